"""Every value a member can put on chain, fed to the decoders and renderers: nothing
raises, nothing reaches a terminal unescaped, nothing breaks the HTML.

Values are generated from the contracts' ABI (every function output, event and
custom error): uint64 times at their edges (0, 1, now-1, 2^63-1, 2^63, 2^64-1, the
last second a datetime holds), uint32 counts up to 2^32-1, enums beyond their last
member, strings with control characters, rich markup, HTML, invalid UTF-8 and 10 kB,
zero and odd addresses. Each decoded value then goes through the typed wrappers of
``chain/contracts.py`` and what shows it: the CLI's tables and sentences, the
broker's mirror and the API's schemas, the audit trail, its PROV-JSON and the HTML
page, revert sentences.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_abi import encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prov.model import ProvDocument
from rich.console import Console

from govshare.api.schemas import RequestOut
from govshare.audit.checks import overdue_requests
from govshare.audit.html import render_status, render_trail
from govshare.audit.prov import trail_to_prov
from govshare.audit.report import period_report, render_report_html, report_prov
from govshare.audit.trail import build_trail
from govshare.broker.access import upsert_request
from govshare.broker.db import Database, sqlite_url
from govshare.broker.errors import ReceiptInvalid
from govshare.broker.exchange import H_RECEIPT_ISSUED_AT, H_RECEIPT_SEQ, ExchangeReceipt
from govshare.broker.queries import list_requests
from govshare.chain.abi import Artifact, load_artifact
from govshare.chain.contracts import (
    AccessLedger,
    AccessRequest,
    ConsortiumRegistry,
    GrantReason,
    GrantStatus,
    RecordRegistry,
    RequestStatus,
)
from govshare.chain.reverts import RevertDecoder
from govshare.cli._render import SafeTable
from govshare.errors import InputError
from govshare.util import iso, printable

NOW = int(time.time())
UINT64_EDGES = [
    0,
    1,
    NOW - 1,
    NOW,
    2**31 - 1,
    2**32,
    253_402_300_799,  # the last second a datetime holds
    253_402_300_800,
    2**63 - 1,
    2**63,
    2**64 - 1,
]
HOSTILE_TEXT = [
    "",
    "[red]x[/red]",
    "[/]",
    "[bold",
    "\x1b[31mred\x1b[0m",
    "\x1b]8;;http://evil.example\x07link\x1b]8;;\x07",
    "line\rover\nwrite\x08\x07",
    "\u202eevil\u202c approved",
    "<script>alert(1)</script>&amp;\"'<img src=x>",
    "{deadline} {0} %s",
    "中文 العربية 😀",
    "\x00\x85\u2028",
]
HOSTILE_BYTES = [t.encode() for t in HOSTILE_TEXT] + [
    b"\xff\xfe\xfd",  # not UTF-8: the EVM never checks a string
    b"ok\xc3",
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
    b"A" * 10_000,
]
ADDRESSES = [b"\0" * 20, b"\xff" * 20, bytes.fromhex("00" * 19 + "01")]
BYTES32 = [
    b"\0" * 32,
    b"\xff" * 32,
    b"TAX".ljust(32, b"\0"),
    b"\x1b[31mX".ljust(32, b"\0"),
    b"[red]".ljust(32, b"\0"),
    b"\xc3\x84B".ljust(32, b"\0"),
    b"T\0X".ljust(32, b"\0"),
]

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# (one run per event and per error: about a hundred of them)
EACH = settings(SETTINGS, max_examples=30)


def uint(bits: int) -> st.SearchStrategy[int]:
    top = 2**bits - 1
    edges = sorted({v for v in [*UINT64_EDGES, 2**bits - 1, 2**bits - 2, 255, 256] if v <= top})
    return st.one_of(st.sampled_from(edges), st.integers(0, top))


def hostile_bytes(max_size: int = 64) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(HOSTILE_BYTES),
        st.binary(max_size=max_size),
        st.text(max_size=max_size).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


def for_param(param: Mapping[str, Any]) -> tuple[str, st.SearchStrategy[Any]]:
    """(the type to encode with, values) for an ABI parameter; strings are
    encoded as ``bytes`` so that invalid UTF-8 reaches the decoder."""
    typ = str(param["type"])
    if typ.endswith("[]"):
        inner_type, inner = for_param({**param, "type": typ[:-2]})
        return inner_type + "[]", st.lists(inner, max_size=3)
    if typ == "tuple":
        parts = [for_param(c) for c in param["components"]]
        return "(" + ",".join(t for t, _ in parts) + ")", st.tuples(*(s for _, s in parts))
    if typ.startswith("uint"):
        return typ, uint(int(typ[4:] or 256))
    if typ == "address":
        return typ, st.one_of(st.sampled_from(ADDRESSES), st.binary(min_size=20, max_size=20))
    if typ == "bool":
        return typ, st.booleans()
    if typ == "bytes32":
        return typ, st.one_of(st.sampled_from(BYTES32), st.binary(min_size=32, max_size=32))
    if typ in ("string", "bytes"):
        return "bytes", hostile_bytes()
    raise AssertionError(f"no strategy for {typ}")


def abi_values(params: tuple[Mapping[str, Any], ...]) -> st.SearchStrategy[bytes]:
    """ABI-encoded values for ``params``, as a contract (or a hostile node) returns them."""
    parts = [for_param(p) for p in params]
    types = [t for t, _ in parts]
    return st.tuples(*(s for _, s in parts)).map(lambda vs: encode(types, list(vs)))


# -- the typed wrappers, fed what a call could return -------------------------------------


class Fed:
    """A wrapper whose ``_call`` answers with the output bytes a test chose,
    decoded by the real codec (so the whole decoding path runs)."""

    def __init__(self, cls: type, name: str) -> None:
        self.wrapper = cls.__new__(cls)
        self.wrapper.artifact = load_artifact(name)
        self.wrapper.name = name
        self.wrapper._fns = {}
        self.answers: dict[str, bytes] = {}
        self.wrapper._call = self._call

    def _call(self, fn: str, *args: Any, block: Any = "latest") -> list[Any]:
        return self.wrapper._fn(fn).decode(self.answers[fn])


def outputs(name: str, fn: str) -> tuple[Mapping[str, Any], ...]:
    return load_artifact(name).function(fn).outputs


def render_everywhere(r: AccessRequest) -> str:
    """Every CLI rendering of a request; returns what a terminal would get."""
    from govshare.cli import grant, supervise

    d = grant.request_dict(r, GrantStatus(r.id, False, GrantReason.EXPIRED))
    json.dumps(d, default=str)
    table = SafeTable(title="Requests and grants")
    for col in ["id", "from", "to", "record", "purpose", "status", "uses", "expires"]:
        table.add_column(col)
    table.add_row(
        str(d["id"]),
        d["requester_department"],
        d["owner_department"],
        d["record_id"][:18] + "…",
        d["purpose"],
        d["status"],
        f"{d['used_count']}/{d['max_uses']}",
        d["expires_at_iso"],
    )
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True, color_system="truecolor").print(table)
    return out.getvalue() + grant._describe(r) + supervise._describe(r)


def assert_no_raw_controls(text: str, allowed: str = "\n") -> None:
    """Only the renderer's own styling may be an escape sequence; any other control
    character would come from the chain."""
    import re

    stripped = re.sub(r"\x1b\[[0-9;]*m", "", text)  # rich's own SGR styling
    bad = [c for c in stripped if (ord(c) < 0x20 and c not in allowed) or 0x7F <= ord(c) < 0xA0]
    assert not bad, repr(bad[:5])
    assert "\u202e" not in stripped


@SETTINGS
@given(data=abi_values(outputs("AccessLedger", "getRequest")))
def test_requests_decode_and_render(data: bytes) -> None:
    fed = Fed(AccessLedger, "AccessLedger")
    fed.answers["getRequest"] = data
    r = fed.wrapper.get_request(1)
    json.dumps(r.to_dict())
    assert r.scope_label == printable(r.scope_label)
    shown = render_everywhere(r)
    assert_no_raw_controls(shown)
    if "[red]x[/red]" in r.purpose:
        assert "[red]x[/red]" in shown  # markup shown, not obeyed
    for t in (r.deadline, r.expires_at, r.requested_at, r.decided_at, r.revoked_at):
        assert iso(t)


@SETTINGS
@given(
    dept=abi_values(outputs("ConsortiumRegistry", "getDepartment")),
    proposal=abi_values(outputs("ConsortiumRegistry", "getProposal")),
    init=abi_values(outputs("ConsortiumRegistry", "proposedDepartment")),
    binding=abi_values(outputs("ConsortiumRegistry", "departmentOf")),
    status=abi_values(outputs("ConsortiumRegistry", "departmentStatus")),
)
def test_departments_and_proposals_decode_and_render(
    dept: bytes, proposal: bytes, init: bytes, binding: bytes, status: bytes
) -> None:
    from govshare.cli import dept as dept_cli

    fed = Fed(ConsortiumRegistry, "ConsortiumRegistry")
    fed.answers.update(
        getDepartment=dept,
        getProposal=proposal,
        proposedDepartment=init,
        departmentOf=binding,
        departmentStatus=status,
    )
    reg = fed.wrapper
    d = reg.get_department("TAX")
    row = dept_cli._dept_dict(d)
    json.dumps(row)
    p = reg.get_proposal(1)
    json.dumps(p.to_dict())
    iso(p.expires_at), iso(p.created_at), iso(p.executed_at)
    json.dumps(reg.proposed_department(1).to_dict())
    reg.department_of("0x" + "00" * 20)
    assert reg.department_status("TAX").value
    table = SafeTable()
    for col in ["code", "name", "status", "broker", "admins", "endpoint"]:
        table.add_column(col)
    table.add_row(
        row["code"],
        row["name"],
        row["status"],
        row["broker"],
        str(len(row["admins"])),
        row["endpoint"],
    )
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True).print(table)
    lines = "\n".join(f"{k:<15} {printable(v)}" for k, v in row.items())
    assert_no_raw_controls(out.getvalue() + lines)


@SETTINGS
@given(
    record=abi_values(outputs("RecordRegistry", "getRecord")),
    batch=abi_values(outputs("RecordRegistry", "getBatch")),
    cats=abi_values(outputs("RecordRegistry", "categories")),
    receipts=abi_values(outputs("AccessLedger", "getReceiptBatch")),
    grant=abi_values(outputs("AccessLedger", "grantStatus")),
)
def test_records_batches_categories_and_grants_decode(
    record: bytes, batch: bytes, cats: bytes, receipts: bytes, grant: bytes
) -> None:
    from govshare.cli import catalog

    rr = Fed(RecordRegistry, "RecordRegistry")
    rr.answers.update(getRecord=record, getBatch=batch, categories=cats)
    rec = rr.wrapper.get_record("0x" + "11" * 32)
    json.dumps(rec.to_dict())
    iso(rec.anchored_at)
    json.dumps(rr.wrapper.get_batch("TAX", 1).to_dict())
    for c in rr.wrapper.categories("TAX"):
        entry = catalog._entry(c)
        json.dumps(entry)
        printable(entry["description"])
    al = Fed(AccessLedger, "AccessLedger")
    al.answers.update(getReceiptBatch=receipts, grantStatus=grant)
    b = al.wrapper.get_receipt_batch("TAX", 1)
    json.dumps(b.to_dict())
    iso(b.anchored_at)
    json.dumps(al.wrapper.grant_status(1).to_dict())


# -- events and reverts ---------------------------------------------------------------------


def _events() -> list[tuple[str, Any]]:
    return [
        (f"{name}.{codec.name}", codec)
        for name in ("ConsortiumRegistry", "RecordRegistry", "AccessLedger")
        for codec in load_artifact(name).events.values()
    ]


@pytest.mark.parametrize(("label", "codec"), _events(), ids=[e[0] for e in _events()])
def test_every_event_decodes(label: str, codec: Any) -> None:
    topic_types = [for_param(p) for p in codec.indexed]

    @EACH
    @given(
        data=abi_values(codec.data),
        topics=st.tuples(*(s for _, s in topic_types)) if topic_types else st.just(()),
    )
    def run(data: bytes, topics: tuple[Any, ...]) -> None:
        raw_topics = [codec.topic]
        for (typ, _), value in zip(topic_types, topics, strict=True):
            dynamic = typ == "bytes" or typ.endswith(("]", ")"))
            # an indexed dynamic value is only its 32-byte hash on chain
            raw_topics.append(b"\x11" * 32 if dynamic else encode([typ], [value]))
        json.dumps(codec.decode(raw_topics, data), default=lambda v: "0x" + bytes(v).hex())

    run()


def _errors() -> list[tuple[str, Any]]:
    return [
        (codec.name, codec)
        for name in ("ConsortiumRegistry", "RecordRegistry", "AccessLedger")
        for codec in load_artifact(name).errors.values()
        if codec.name.startswith(name)
    ]


@pytest.mark.parametrize(("name", "codec"), _errors(), ids=[e[0] for e in _errors()])
def test_every_revert_reads_as_a_sentence(name: str, codec: Any) -> None:
    decoder = RevertDecoder()

    @EACH
    @given(data=abi_values(codec.inputs))
    def run(data: bytes) -> None:
        err = decoder(codec.selector + data, "the call", "0x" + "ab" * 20)
        assert err.reason in (name, "")
        assert err.message.strip()
        json.dumps(err.to_dict())

    run()


@SETTINGS
@given(message=hostile_bytes(200))
def test_a_revert_string_is_shown_never_obeyed(message: bytes) -> None:
    from eth_utils import keccak

    err = RevertDecoder()(
        keccak(text="Error(string)")[:4] + encode(["bytes"], [message]), "x", None
    )
    assert_no_raw_controls(err.message, allowed="")


# -- what the broker mirrors and the API answers --------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(sqlite_url(tmp_path / "broker.db"))
    yield database
    database.close()


@SETTINGS
@given(data=abi_values(outputs("AccessLedger", "getRequest")))
def test_the_mirror_stores_and_the_api_answers_any_request(db: Database, data: bytes) -> None:
    fed = Fed(AccessLedger, "AccessLedger")
    fed.answers["getRequest"] = data
    r = fed.wrapper.get_request(1)
    # as the mirror sees it: about one of our two departments
    r = AccessRequest(**{**r.__dict__, "requester_department": "MARKET", "owner_department": "TAX"})
    with db.session() as s:
        upsert_request(s, r, block=int(time.time_ns()))
    for view in list_requests(db, "TAX"):
        body = RequestOut.of(view).model_dump_json()
        json.loads(body)


# -- what the auditor reads: trail, PROV, page -----------------------------------------------


def fake_view(req: AccessRequest, rec: Any) -> Any:
    """An AuditView over one record and one request, answering like the real one."""

    def ev(name: str, **args: Any) -> Any:
        return SimpleNamespace(event=name, args=args, block_number=1, tx_hash="0x" + "ee" * 32)

    hexed = {k: "0x" + getattr(rec, k).hex() for k in ("record_id", "content_hash")}
    all_events = [
        ev(
            "RecordAnchored",
            recordId=hexed["record_id"],
            department="0x" + rec.department.encode("utf-8", "replace").ljust(32, b"\0").hex(),
            category="0x" + rec.category.encode("utf-8", "replace")[:32].ljust(32, b"\0").hex(),
            previousRecordId="0x" + (rec.previous_record_id or b"\0" * 32).hex(),
        ),
        ev("AccessRequested", requestId=req.id),
        ev("AccessApproved", requestId=req.id),
        ev("AccessDenied", requestId=req.id),
        ev("AccessRevoked", grantId=req.id),
    ]

    def events(names: Any) -> list[Any]:
        wanted = [names] if isinstance(names, str) else list(names)
        return [e for e in all_events if e.event in wanted]

    index = SimpleNamespace(
        events_for_record=lambda rid, name=None: [],
        events_for_request=lambda rid, names=None: [],
        events=events,
    )
    ledger = SimpleNamespace(
        chain_id=31337,
        block_number=lambda: 1,
        now=lambda: NOW,
        records=SimpleNamespace(versions=lambda rid: [rec]),
        access=SimpleNamespace(requests_for_record=lambda rid: [req.id], address="0x" + "ac" * 20),
    )
    return SimpleNamespace(
        ledger=ledger,
        index=index,
        record=lambda rid: rec,
        request=lambda i: req if req.status is not RequestStatus.NONE else None,
        block_times=lambda numbers: {n: NOW for n in numbers},
        now=lambda: NOW,
        batches=None,  # no record batches in this view
    )


@SETTINGS
@given(
    request=abi_values(outputs("AccessLedger", "getRequest")),
    record=abi_values(outputs("RecordRegistry", "getRecord")),
)
def test_trails_prov_and_the_auditor_page_render_any_values(request: bytes, record: bytes) -> None:
    from govshare.cli import audit as audit_cli

    al = Fed(AccessLedger, "AccessLedger")
    al.answers["getRequest"] = request
    rr = Fed(RecordRegistry, "RecordRegistry")
    rr.answers["getRecord"] = record
    req, rec = al.wrapper.get_request(1), rr.wrapper.get_record("0x" + "11" * 32)
    rid = "0x" + rec.record_id.hex()
    view = fake_view(req, rec)
    trail = build_trail(view, rid)  # type: ignore[arg-type]
    json.dumps(trail)
    page = render_trail(trail)
    assert "<script>" not in page
    prov = trail_to_prov(trail)
    ProvDocument.deserialize(content=json.dumps(prov), format="json")
    overdue = overdue_requests(view)  # type: ignore[arg-type]
    status = render_status({"departments": [], "batches": [], "ok": True, "problems": []}, overdue)
    assert "<script>" not in status
    out = io.StringIO()
    import click

    real_echo = click.echo
    try:
        click.echo = lambda message="", **kw: out.write(f"{message}\n")  # type: ignore[assignment]
        audit_cli._trail_text(trail)
    finally:
        click.echo = real_echo  # type: ignore[assignment]
    assert_no_raw_controls(out.getvalue())


@SETTINGS
@given(
    request=abi_values(outputs("AccessLedger", "getRequest")),
    record=abi_values(outputs("RecordRegistry", "getRecord")),
    since=uint(64),
)
def test_period_reports_render_any_values(request: bytes, record: bytes, since: int) -> None:
    al = Fed(AccessLedger, "AccessLedger")
    al.answers["getRequest"] = request
    rr = Fed(RecordRegistry, "RecordRegistry")
    rr.answers["getRecord"] = record
    req, rec = al.wrapper.get_request(1), rr.wrapper.get_record("0x" + "11" * 32)
    view = fake_view(req, rec)
    for lo, hi in ((0, 2**64 - 1), (since, 2**64 - 1), (0, since)):
        report = period_report(view, lo, hi)  # type: ignore[arg-type]
        json.dumps(report)
        page = render_report_html(report)
        assert "<script>" not in page and "<img" not in page
        prov = report_prov(view, report)  # type: ignore[arg-type]
        ProvDocument.deserialize(content=json.dumps(prov), format="json")


# -- values another department's broker sends --------------------------------------------


@SETTINGS
@given(seq=st.one_of(uint(64), st.text(max_size=30)), issued=st.one_of(uint(256), st.text()))
def test_receipt_headers_are_bounded_or_refused(seq: Any, issued: Any) -> None:
    from govshare.broker.exchange import (
        H_CAPSULE_HASH,
        H_CIPHERTEXT_CID,
        H_RECEIPT_SIGNATURE,
        H_REQUEST_HASH,
    )

    headers = {
        H_REQUEST_HASH: "0x" + "ab" * 32,
        H_CAPSULE_HASH: "0x" + "cd" * 32,
        H_CIPHERTEXT_CID: "bafy",
        H_RECEIPT_SEQ: str(seq),
        H_RECEIPT_ISSUED_AT: str(issued),
        H_RECEIPT_SIGNATURE: "0x" + "11" * 65,
    }
    try:
        receipt, _ = ExchangeReceipt.from_headers(headers)
    except ReceiptInvalid:
        return
    assert 1 <= receipt.seq < 2**63 and 1 <= receipt.issued_at <= 253_402_300_799


def test_the_fuzz_covers_every_view_the_wrappers_decode() -> None:
    """A new struct-returning view must be added to the fuzz above."""
    fuzzed = {
        "getRequest",
        "getReceiptBatch",
        "grantStatus",
        "getRecord",
        "getBatch",
        "categories",
        "getCategory",
        "getDepartment",
        "getProposal",
        "proposedDepartment",
        "departmentOf",
        "departmentStatus",
    }
    art: dict[str, Artifact] = {n: load_artifact(n) for n in ("AccessLedger", "RecordRegistry")}
    art["ConsortiumRegistry"] = load_artifact("ConsortiumRegistry")
    structs = {
        fn.name
        for a in art.values()
        for fn in a.functions.values()
        if fn.is_view and any(p["type"] in ("tuple", "tuple[]", "string") for p in fn.outputs)
    }
    assert structs - fuzzed <= {"eip712Domain"}, structs - fuzzed


def test_an_unknown_enum_number_is_marked_and_fails_closed() -> None:
    from govshare.chain.contracts import DepartmentStatus, GrantReason

    unknown = RequestStatus.from_chain(7)
    assert unknown.value == "unknown-7" and not unknown.known
    assert unknown is RequestStatus.from_chain(7)  # one stand-in per number
    assert unknown not in list(RequestStatus) and unknown != RequestStatus.APPROVED
    assert RequestStatus.from_chain(2) is RequestStatus.APPROVED and RequestStatus.APPROVED.known
    assert DepartmentStatus.from_chain(9) is not DepartmentStatus.ACTIVE  # not active: refused
    assert GrantReason.from_chain(255).value == "unknown-255"
    with pytest.raises(InputError):
        _ = unknown.index  # never sent back to a contract


def test_department_codes_that_are_no_label_show_as_hex() -> None:
    from govshare.chain.contracts import decode_code

    assert decode_code(b"TAX".ljust(32, b"\0")) == "TAX"
    assert decode_code(b"\0" * 32) == ""
    hostile = b"\x1b[31mX".ljust(32, b"\0")
    assert decode_code(hostile) == "0x" + hostile.hex()
    assert decode_code(b"\xc3\x84B".ljust(32, b"\0")).startswith("0x")
