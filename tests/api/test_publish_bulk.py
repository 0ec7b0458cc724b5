"""``POST /v1/records/batch`` over real HTTP (a uvicorn thread, this module's own
anvil): each record gets the answer ``POST /v1/records`` would give it; a retry
of the whole request replays every record; a request that is wrong as a whole
is refused before anything is kept, and nothing is left in the spool."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from govshare.broker.publish import MAX_BULK
from govshare.chain.devnode import AnvilProcess
from integration.world import CATEGORY, Broker, World, anchored_record, build_world, start_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        yield w
        w.close()


@pytest.fixture(scope="module")
def tax(world: World) -> Iterator[Broker]:
    b = start_broker(world, "TAX")
    yield b
    b.close()


def bulk(
    b: Broker,
    files: list[tuple[str, bytes]],
    items: list[dict[str, Any]] | str,
    *,
    who: str = "clerk",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    data = {"items": items if isinstance(items, str) else json.dumps(items), **(extra or {})}
    return b.client.post(
        "/v1/records/batch",
        headers=b.auth(who),
        files=[("file", (name, content, "application/pdf")) for name, content in files],
        data=data,
    )


def spool(b: Broker) -> list[str]:
    return sorted(p.name for p in b.svc.spool.iterdir())


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text


def test_each_record_gets_the_single_routes_answer_and_a_retry_replays_them(
    tax: Broker,
) -> None:
    files = [(f"cert-{i}.pdf", os.urandom(2048)) for i in range(3)]
    items = [{"idempotency_key": f"bulk-api-{i}", "category": CATEGORY} for i in range(3)]
    items[1]["subject"] = "91110000710928411X"
    items.append({"idempotency_key": "bulk-api-bad", "category": "no-such-category"})
    files.append(("bad.pdf", b"refused"))
    r = bulk(tax, files, items)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3]
    for x in results[:3]:
        assert x["status"] == 202, x
        assert x["body"]["state"] == "anchoring" and x["body"]["replayed"] is False
    # the refused one: the problem POST /v1/records answers for an unknown category
    single = tax.client.post(
        "/v1/records",
        headers={**tax.auth(), "Idempotency-Key": "single-bad", "Prefer": "respond-async"},
        files={"file": ("x.pdf", b"refused", "application/pdf")},
        data={"category": "no-such-category"},
    )
    assert results[3]["status"] == single.status_code
    assert results[3]["body"]["code"] == single.json()["code"] == "record.unknown_category"
    assert spool(tax) == []

    again = bulk(tax, files[:3], items[:3]).json()["results"]
    assert [x["body"]["record_id"] for x in again] == [x["body"]["record_id"] for x in results[:3]]
    assert all(x["body"]["replayed"] is True for x in again)
    assert spool(tax) == []

    tax.runtime.svc.record_batcher.run_once(force=True)
    for x, (_name, _data) in zip(results[:3], files[:3], strict=True):
        rid = x["body"]["record_id"]
        assert anchored_record(tax.svc, rid).department == "TAX"
        got = tax.client.get(f"/v1/records/{rid}", headers=tax.auth()).json()
        assert got["status"] == "anchored"


@pytest.mark.parametrize(
    ("items", "extra", "status", "code", "what"),
    [
        ([{"idempotency_key": "a", "category": CATEGORY}], None, 400, "input.invalid", "2 files"),
        ("not json", None, 400, "input.invalid", "not valid"),
        ([{"idempotency_key": "a", "category": CATEGORY, "x": 1}] * 2, None, 400,
         "input.invalid", "not valid"),
        ([{"category": CATEGORY}] * 2, None, 400, "input.invalid", "idempotency_key"),
        ([{"idempotency_key": "a", "category": CATEGORY}] * 2, {"category": CATEGORY}, 400,
         "input.invalid", "not ['category']"),
    ],
)  # fmt: skip
def test_a_request_wrong_as_a_whole_keeps_nothing(
    tax: Broker, items: Any, extra: dict[str, str] | None, status: int, code: str, what: str
) -> None:
    before = tax.client.get("/v1/records", headers=tax.auth()).json()
    r = bulk(tax, [("a.pdf", b"a"), ("b.pdf", b"b")], items, extra=extra)
    problem(r, status, code)
    assert what in r.json()["detail"]
    assert spool(tax) == []
    assert tax.client.get("/v1/records", headers=tax.auth()).json() == before


def test_limits_and_auth_are_checked_before_anything_is_kept(tax: Broker) -> None:
    one = [{"idempotency_key": "lim", "category": CATEGORY}]
    # not multipart
    r = tax.client.post("/v1/records/batch", headers=tax.auth(), json={"items": one})
    problem(r, 415, "input.not_multipart")
    # more files than one request may carry
    many = [(f"{i}.pdf", b"x") for i in range(MAX_BULK + 1)]
    items = [{"idempotency_key": f"m{i}", "category": CATEGORY} for i in range(MAX_BULK + 1)]
    problem(bulk(tax, many, items), 400, "input.invalid")
    # files adding up to more than the upload limit
    limits = tax.svc.limits
    tax.svc.limits = replace(limits, max_upload=10_000)  # the broker's bound, lowered here
    try:
        big = [("a.pdf", os.urandom(6000)), ("b.pdf", os.urandom(6000))]
        r = bulk(tax, big, [{"idempotency_key": f"big{i}", "category": CATEGORY} for i in range(2)])
        problem(r, 413, "input.too_large")
    finally:
        tax.svc.limits = limits
    # no token, and a role that may not publish
    r = tax.client.post("/v1/records/batch", files=[("file", ("a", b"a"))], data={"items": "[]"})
    problem(r, 401, "auth.required")
    problem(bulk(tax, [("a.pdf", b"a")], one, who="auditor"), 403, "auth.forbidden")
    assert spool(tax) == []


def test_a_new_version_in_a_bulk_request_takes_the_single_path_from_memory(tax: Broker) -> None:
    """A small file of a bulk request is held in memory; a record that takes the
    single path (here: a new version) is written to the spool for it first."""
    (v1,) = bulk(
        tax, [("v1.pdf", b"version one")], [{"idempotency_key": "v-1", "category": CATEGORY}]
    ).json()["results"]
    rid = v1["body"]["record_id"]
    r = bulk(
        tax,
        [("v2.pdf", b"version two")],
        [{"idempotency_key": "v-2", "category": CATEGORY, "supersedes": rid}],
    )
    (v2,) = r.json()["results"]
    assert v2["status"] == 202, v2
    assert spool(tax) == []
    tax.svc.record_batcher.run_once(force=True)
    leaf = anchored_record(tax.svc, v2["body"]["record_id"])
    assert leaf.previous_record_id == bytes.fromhex(rid[2:])
    got = tax.client.get(f"/v1/records/{v2['body']['record_id']}/content", headers=tax.auth())
    assert got.content == b"version two"
