"""Hostile values, end to end on a real chain with two brokers.

A member's broker key and administrator key send absurd times straight to the
contracts: each is refused with its exact custom error. Then the members write
the largest values the contracts accept (a deadline exactly a year ahead, an
expiry exactly ten years ahead, a 2^32-1 quota) and texts made to break whoever
shows them (rich markup, terminal escape sequences, bidi overrides, HTML, invalid
UTF-8 sent as raw calldata): every read path still answers and shows them inert —
the CLI (``grant list``, ``request list``, ``audit trail``), the API's request and
grant routes, the trail as JSON and PROV, and the auditor's page. Out-of-range
values a clerk sends to the API are a 422 with one sentence, never a 500.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jsonschema
import pytest
from eth_abi import encode
from prov.model import ProvDocument

from audit.conftest import schema
from cliharness import Cli
from govshare.chain.contracts import encode_code, encode_scope
from govshare.chain.devnode import AnvilProcess
from govshare.chain.tx import TxRequest
from govshare.errors import ContractReverted, OutOfRange
from govshare.util import MAX_GRANT_EXPIRY, MAX_REQUEST_DEADLINE
from integration.world import CATEGORY, PASSWORD, Broker, World, build_world, start_broker

pytestmark = pytest.mark.integration

DAY = 86400
PURPOSE = (
    "[red]x[/] [bold]licence \x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \u202edevorppa "
    "<script>alert(1)</script> line\rover"
)
LEGAL = "[/] \x08\x08\x08art. 5"
REASON = "\x1b[2J [/bold] <img src=x onerror=alert(1)>"
RAW_PURPOSE = b"\xff\xfe not UTF-8 \x00 \xc3"  # the EVM stores any bytes as a string


@dataclass
class Scene:
    world: World
    tax: Broker
    market: Broker
    record: str
    granted: int  # deadline and expiry at the horizons, hostile texts, 2^32-1 uses
    denied: int  # invalid UTF-8 purpose, hostile reason


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as n:
        yield n


@pytest.fixture(scope="module")
def world(node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def record(world: World) -> str:
    rid = os.urandom(32)
    world.ledger.records.anchor(world["TAX"].broker, rid, os.urandom(32), "bafy-hostile", CATEGORY)
    return "0x" + rid.hex()


def at_next_block(world: World) -> int:
    """Pin the next block's time: the horizons are measured from it."""
    t = max(world.ledger.latest_timestamp() + 1, world.ledger.now() + 1)
    world.ledger.conn.request("evm_setNextBlockTimestamp", [hex(t)])
    return t


def send(world: World, code: str, role: str, fn: str, *args: Any) -> Any:
    """A transaction with a fixed gas limit: nothing is estimated first, the
    block that includes it decides (so a value exactly at the horizon counts)."""
    access = world.ledger.access
    who = world[code].broker if role == "broker" else world[code].admin
    return world.ledger.sender.transact(who, access._request(fn, *args, gas=3_000_000))


@pytest.fixture(scope="module")
def scene(world: World, record: str) -> Iterator[Scene]:
    L = world.ledger
    t = at_next_block(world)
    args = (encode_code("TAX"), bytes.fromhex(record[2:]), PURPOSE, LEGAL, t + 366 * DAY)
    tx = send(world, "MARKET", "broker", "requestAccess", *args)
    granted = int(tx.event("AccessRequested").args["requestId"])
    # invalid UTF-8: the ABI encodes a string as bytes, so send the bytes
    fn = L.access._fn("requestAccess")
    data = fn.selector + encode(
        ["bytes32", "bytes32", "bytes", "bytes", "uint64"],
        [encode_code("TAX"), bytes.fromhex(record[2:]), RAW_PURPOSE, b"\x1b[5m", t + DAY],
    )
    tx = L.sender.transact(world["MARKET"].broker, TxRequest(to=L.access.address, data=data))
    denied = int(tx.event("AccessRequested").args["requestId"])
    t = at_next_block(world)
    scope = encode_scope(b"\x1b[31m[red]".ljust(32, b"\0"))
    send(world, "TAX", "admin", "approve", granted, scope, t + 3653 * DAY, 2**32 - 1)
    L.access.deny(world["TAX"].admin, denied, REASON)
    tax, market = start_broker(world, "TAX"), start_broker(world, "MARKET")
    yield Scene(world, tax, market, record, granted, denied)
    tax.close()
    market.close()


def cli(world: World) -> Cli:
    return Cli(world.home, env={"GOVSHARE_PASSWORD": PASSWORD})


def assert_inert(text: str) -> None:
    """Shown, never obeyed: no raw control character reached the output."""
    raw = [c for c in text if (ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) < 0xA0]
    assert not raw, repr(raw[:5])
    assert "\u202e" not in text


# -- refused at the contract ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "error"),
    [
        (2**64 - 1, "AccessLedgerDeadlineTooFar"),
        (2**63, "AccessLedgerDeadlineTooFar"),
        (0, "AccessLedgerInvalidDeadline"),
        ("now-1", "AccessLedgerInvalidDeadline"),
    ],
)
def test_a_broker_key_cannot_store_an_absurd_deadline(
    world: World, record: str, when: int | str, error: str
) -> None:
    deadline = world.ledger.now() - 1 if when == "now-1" else int(when)
    before = world.ledger.access.request_count()
    with pytest.raises(ContractReverted) as err:
        world.ledger.access.request_access(world["MARKET"].broker, "TAX", record, "p", "", deadline)
    assert err.value.reason == error
    assert err.value.revert_args["deadline"] == deadline
    assert err.value.message.endswith(".") and "Traceback" not in err.value.message
    # a mined transaction (no estimate first) is refused the same way
    with pytest.raises(ContractReverted) as err:
        send(world, "MARKET", "broker", "requestAccess", encode_code("TAX"),
             bytes.fromhex(record[2:]), "p", "", deadline)  # fmt: skip
    assert err.value.reason == error and err.value.details.get("tx_hash")
    assert world.ledger.access.request_count() == before


@pytest.mark.parametrize(
    ("when", "error"),
    [
        (2**64 - 1, "AccessLedgerExpiryTooFar"),
        (2**63, "AccessLedgerExpiryTooFar"),
        (0, "AccessLedgerInvalidExpiry"),
        ("now-1", "AccessLedgerInvalidExpiry"),
    ],
)
def test_an_admin_key_cannot_store_an_absurd_expiry(
    world: World, record: str, when: int | str, error: str
) -> None:
    L = world.ledger
    rid = L.access.request_access(
        world["MARKET"].broker, "TAX", record, "p", "", L.now() + DAY
    ).value
    expires = L.now() - 1 if when == "now-1" else int(when)
    with pytest.raises(ContractReverted) as err:
        L.access.approve(world["TAX"].admin, rid, expires_at=expires, max_uses=1)
    assert err.value.reason == error and err.value.revert_args["expiresAt"] == expires
    with pytest.raises(ContractReverted) as err:
        send(world, "TAX", "admin", "approve", rid, b"\0" * 32, expires, 1)
    assert err.value.reason == error and err.value.details.get("tx_hash")
    assert L.access.get_request(rid).status.value == "pending"


def test_a_value_that_does_not_fit_is_refused_before_sending(world: World, record: str) -> None:
    L = world.ledger
    with pytest.raises(OutOfRange) as err:
        L.access.request_access(world["MARKET"].broker, "TAX", record, "p", "", 2**64)
    assert err.value.code == "input.out_of_range"
    with pytest.raises(OutOfRange):
        L.access.approve(world["TAX"].admin, 1, expires_at=2**64, max_uses=1)
    with pytest.raises(OutOfRange):
        L.access.approve(world["TAX"].admin, 1, expires_at=L.now() + DAY, max_uses=2**32)


def test_clients_ask_for_less_than_the_contracts_allow(world: World) -> None:
    """The clients' limits leave a day for clocks: an allowed duration is never refused."""
    access = world.ledger.access
    assert access.deadline_horizon() - MAX_REQUEST_DEADLINE >= DAY
    assert access.expiry_horizon() - MAX_GRANT_EXPIRY >= DAY


# -- what the contracts accept, every read path answers ---------------------------------


def test_the_extreme_values_are_on_chain(scene: Scene) -> None:
    L = scene.world.ledger
    g, d = L.access.get_request(scene.granted), L.access.get_request(scene.denied)
    assert g.deadline - g.requested_at == 366 * DAY
    assert g.expires_at - g.decided_at == 3653 * DAY and g.max_uses == 2**32 - 1
    assert g.purpose == PURPOSE and g.legal_basis == LEGAL
    assert d.purpose == RAW_PURPOSE.decode("utf-8", "replace").replace("\0", "\ufffd")
    assert d.deny_reason == REASON


def test_the_api_lists_them(scene: Scene) -> None:
    for b in (scene.tax, scene.market):
        for route in ("/v1/requests", "/v1/grants"):
            r = b.client.get(route, headers=b.auth())
            assert r.status_code == 200, r.text
            assert r.headers["govshare-synced"] == "true"
        rows = {row["id"]: row for row in b.client.get("/v1/requests", headers=b.auth()).json()}
        g = rows[scene.granted]
        assert g["status"] == "approved" and g["max_uses"] == 2**32 - 1
        assert g["purpose"] == PURPOSE
        ten_vs_one = datetime.fromisoformat(g["expires_at"]) - datetime.fromisoformat(g["deadline"])
        assert 3286 <= ten_vs_one.days <= 3288
        assert rows[scene.denied]["reason"] == REASON


def test_grant_list_shows_them_inert(scene: Scene) -> None:
    r = cli(scene.world).ok("grant", "list", "--dept", "TAX")
    assert_inert(r.output)
    assert "[red]x[/]" in r.stdout and "\\x1b[31mRED" in r.stdout  # shown, not obeyed
    rows = {d["id"]: d for d in cli(scene.world).ok("grant", "list", "--json").json()["requests"]}
    assert rows[scene.granted]["purpose"] == PURPOSE
    assert rows[scene.granted]["expires_at_iso"].endswith("Z")  # a date, ten years on


def test_request_list_shows_them_inert(scene: Scene) -> None:
    m = scene.market
    args = ["--dept", "MARKET", "--token", m.tokens["clerk"], "--broker", m.dept.url]
    r = cli(scene.world).ok("request", "list", *args)
    assert_inert(r.output)
    assert "[red]x[/]" in r.stdout
    rows = cli(scene.world).ok("request", "list", "--json", *args).json()
    assert {row["id"] for row in rows} >= {scene.granted, scene.denied}


def test_the_audit_trail_shows_them_inert(scene: Scene) -> None:
    c = cli(scene.world)
    r = c.ok("audit", "trail", scene.record)
    assert_inert(r.output)
    assert "\\x1b[31mRED" in r.stdout
    trail = c.ok("audit", "trail", scene.record, "--format", "json").json()
    jsonschema.validate(trail, schema("audit-trail"))
    prov = c.ok("audit", "trail", scene.record, "--format", "prov").stdout
    ProvDocument.deserialize(content=prov, format="json")


def test_the_auditor_page_and_trail_api_answer(scene: Scene) -> None:
    tax = scene.tax
    r = tax.client.get(f"/audit/view?record_id={scene.record}", headers=tax.auth("auditor"))
    assert r.status_code == 200, r.text
    assert "<script>alert" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    st = tax.client.get("/audit/status", headers=tax.auth("auditor"))
    assert st.status_code == 200, st.text
    j = tax.client.get(f"/v1/audit/trail/{scene.record}", headers=tax.auth("auditor"))
    assert j.status_code == 200, j.text
    jsonschema.validate(j.json(), schema("audit-trail"))
    p = tax.client.get(f"/v1/audit/trail/{scene.record}?format=prov", headers=tax.auth("auditor"))
    assert p.status_code == 200, p.text
    ProvDocument.deserialize(content=json.dumps(p.json()), format="json")


# -- refused earlier, with one sentence ------------------------------------------------------


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize("deadline", ["366d", "500000w", "9999999999999999999999d"])
def test_the_api_refuses_a_deadline_beyond_a_year(scene: Scene, deadline: str) -> None:
    m = scene.market
    before = scene.world.ledger.access.request_count()
    body = {"owner": "TAX", "record_id": scene.record, "purpose": "p", "deadline": deadline}
    out = problem(m.client.post("/v1/requests", headers=m.auth(), json=body), 422,
                  "input.out_of_range")  # fmt: skip
    assert "at most 365d" in out["detail"] and out["detail"].count(".") == 1
    assert scene.world.ledger.access.request_count() == before


def test_the_api_accepts_a_deadline_of_exactly_a_year(scene: Scene) -> None:
    m = scene.market
    body = {"owner": "TAX", "record_id": scene.record, "purpose": "p", "deadline": "365d"}
    r = m.client.post("/v1/requests", headers=m.auth(), json=body)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("POST", "/v1/requests", {"json": {"owner": "TAX", "purpose": "p", "deadline": "9" * 40}}),
        ("POST", "/v1/requests", {"json": {"owner": "TAX", "purpose": "a\u0000b"}}),
        ("GET", "/v1/receipts", {"params": {"offset": 2**64}}),
        ("GET", "/v1/receipts", {"params": {"grant": 2**70}}),
        ("GET", "/v1/records", {"params": {"offset": 2**63}}),
        ("GET", "/v1/records/{record}/content", {"params": {"grant": 2**64}}),
    ],
)
def test_numbers_that_do_not_fit_are_a_422(
    scene: Scene, method: str, path: str, kw: dict[str, Any]
) -> None:
    m = scene.market
    if "json" in kw:
        kw = {"json": {"record_id": scene.record, **kw["json"]}}
    who = "auditor" if path == "/v1/receipts" else "clerk"
    r = m.client.request(method, path.format(record=scene.record), headers=m.auth(who), **kw)
    problem(r, 422, "input.validation_failed")


def test_an_exchange_request_with_a_huge_expiry_is_a_422(scene: Scene) -> None:
    body = {
        "requester": "MARKET",
        "owner": "TAX",
        "grant_id": scene.granted,
        "record_id": scene.record,
        "nonce": "1",
        "expires_at": 2**64,
    }
    r = scene.tax.client.post(
        "/v1/exchange", json=body, headers={"Govshare-Signature": "0x" + "11" * 65}
    )
    problem(r, 422, "input.validation_failed")
