"""Record batch manifests and ``RecordBatchAnchored`` values come from another
member: whatever they hold, the batch index answers (indexed or refused, with a
bounded, printable reason), never raises, and what it shows is escaped."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govshare.audit.errors import ManifestUnavailable
from govshare.audit.html import render_record_batches
from govshare.chain.batch import BatchRecord, build_batch
from govshare.chain.batchindex import BatchIndex, _batch_row
from govshare.chain.mirror import IndexedEvent

GOOD = build_batch(
    "TAX",
    [
        BatchRecord(os.urandom(32), "TAX", os.urandom(32), "bafy" + str(i), "doc", os.urandom(32))
        for i in range(5)
    ],
)
ROOT = "0x" + GOOD.root.hex()


class Answer:
    """A source that answers whatever the test says (the CID check is the
    sources' job; this is what passed it)."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def fetch(self, cid: str) -> tuple[bytes, str]:
        if self.data is None:
            raise ManifestUnavailable("No manifest source holds it.", cid=cid)
        return self.data, "peer\x1b[2J"


def read(data: bytes | None, *, count: int = GOOD.count, dept: str = "TAX") -> tuple[str, Any]:
    index = BatchIndex(Answer(data))
    state, values, leaves = index._read_one(dept, 1, ROOT, count, "bafyx", 0)
    return state, (values, leaves)


def check(state: str, out: Any) -> None:
    values, leaves = out
    assert state in ("indexed", "invalid", "unavailable")
    problem = values.get("problem")
    if state == "indexed":
        assert problem is None and len(leaves) == GOOD.count
    else:
        assert leaves == []
        assert isinstance(problem, str) and problem.isprintable() and 0 < len(problem) <= 300
    source = values.get("source")
    assert source is None or source.isprintable()


def test_the_good_manifest_is_indexed_and_anything_else_refused() -> None:
    state, out = read(GOOD.data)
    check(state, out)
    assert state == "indexed"
    assert read(GOOD.data, count=4)[0] == "invalid"
    assert read(GOOD.data, dept="MARKET")[0] == "invalid"
    assert read(None)[0] == "unavailable"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_any_bytes(data: bytes) -> None:
    state, out = read(data)
    check(state, out)
    assert state == "invalid"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=len(GOOD.data) - 1),
    st.binary(min_size=0, max_size=8),
    st.integers(min_value=0, max_value=8),
)
def test_a_valid_manifest_altered_anywhere(at: int, insert: bytes, drop: int) -> None:
    data = GOOD.data[:at] + insert + GOOD.data[at + drop :]
    state, out = read(data)
    check(state, out)
    assert (state == "indexed") == (data == GOOD.data)


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.text(max_size=200)
    | st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=4,
)
#: Values that pass each field's check, so that the others are reached too.
_VALID = {
    "department": st.just("0x" + b"TAX".ljust(32, b"\0").hex()),
    "sequence": st.integers(min_value=0, max_value=2**63 - 1),
    "merkleRoot": st.just(ROOT),
    "count": st.integers(min_value=1, max_value=256),
    "manifestCid": st.just("bafyok"),
    "anchoredBy": st.just("0x" + "22" * 20),
}


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={k: v | _JSONISH for k, v in _VALID.items()}))
def test_any_event_values(args: dict[str, Any]) -> None:
    ev = IndexedEvent(
        1,
        "0x" + "00" * 32,
        "0x" + "ab" * 32,
        0,
        "RecordRegistry",
        "0x",
        "RecordBatchAnchored",
        args,
        {},
    )
    row = _batch_row(ev, 0.0)
    if row is None:
        return
    assert row["state"] in ("pending", "invalid")
    assert 0 <= row["sequence"] < 2**63 and 0 <= row["count"] < 2**63
    assert len(row["manifest_cid"]) <= 128 and row["manifest_cid"].isprintable()
    assert len(row["anchored_by"]) <= 42 and row["anchored_by"].isprintable()
    if row["state"] == "invalid":
        assert row["problem"].isprintable()


def test_the_page_escapes_what_a_member_wrote() -> None:
    html = render_record_batches(
        {
            "batches": [
                {
                    "department": "TAX",
                    "sequence": 3,
                    "count": 2,
                    "manifest_cid": "<script>alert(1)</script>",
                    "state": "invalid",
                    "problem": "bad <img src=x onerror=alert(1)>",
                }
            ],
            "counts": {"invalid": 1},
            "problems": [{"code": "batch.manifest_invalid", "message": "x"}],
            "ok": False,
        }
    )
    assert "<script>" not in html and "<img" not in html
    assert "&lt;img" in html
