"""Besu's administration API, the little of it a consortium operator needs.

The rest of :mod:`govshare.consortium` only generates files; this module talks to
running validators over JSON-RPC (Besu docs, "API methods"):

- ``perm_reloadPermissionsFromFile``: reread ``permissions_config.toml`` (``PERM`` API);
- ``qbft_proposeValidatorVote [address, add]``, ``qbft_getValidatorsByBlockNumber
  ["latest"]``, ``qbft_discardValidatorVote [address]`` (``QBFT`` API). A validator
  joins (or leaves) once more than half of the current validators have proposed
  the same vote; the docs then ask each voter to discard its proposal.

The RPC endpoints are internal to the consortium (the compose stack publishes none):
run these from a container on the validators' RPC networks (the ``ops`` service).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from govshare.consortium.allowlists import normalise_account
from govshare.errors import ChainRejected, ChainUnavailable, GovShareError, InputError

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class NodeResult:
    url: str
    ok: bool
    detail: str


def call(url: str, method: str, params: Sequence[Any], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """One JSON-RPC call: its ``result``; ``ChainRejected`` for an error answer,
    ``ChainUnavailable`` when the node does not answer."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    try:
        resp = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ChainUnavailable(f"{url} did not answer {method} ({type(exc).__name__}).") from None
    if resp.status_code != 200:
        raise ChainRejected(f"{url} answered {method} with HTTP {resp.status_code}.")
    try:
        doc = resp.json()
    except ValueError:
        raise ChainRejected(f"{url} answered {method} with something other than JSON.") from None
    if not isinstance(doc, dict):
        raise ChainRejected(f"{url} answered {method} with a malformed JSON-RPC response.")
    if doc.get("error"):
        err = doc["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        raise ChainRejected(
            f"{url} refused {method}: {message} (is the {method.split('_')[0].upper()} "
            "API enabled on that node?)"
        )
    return doc.get("result")


def reload_allowlists(urls: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> list[NodeResult]:
    """``perm_reloadPermissionsFromFile`` on every node; one result per node."""
    out = []
    for url in urls:
        try:
            call(url, "perm_reloadPermissionsFromFile", [], timeout=timeout)
            out.append(NodeResult(url, True, "reloaded"))
        except GovShareError as exc:
            out.append(NodeResult(url, False, str(exc)))
    return out


def validators(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The current validator set (lower-case addresses)."""
    result = call(url, "qbft_getValidatorsByBlockNumber", ["latest"], timeout=timeout)
    if not isinstance(result, list):
        raise ChainRejected(f"{url}: qbft_getValidatorsByBlockNumber did not return a list.")
    return [normalise_account(str(a)) for a in result]


@dataclass(frozen=True)
class VoteOutcome:
    address: str
    add: bool
    votes: list[NodeResult]
    validators_before: list[str]
    validators_after: list[str]
    done: bool
    discarded: list[NodeResult]


def vote_validator(  # noqa: C901 — refuse, vote, wait, discard: one sequence
    address: str,
    add: bool,
    urls: Sequence[str],
    *,
    wait: float = 120.0,
    poll: float = 2.0,
    timeout: float = DEFAULT_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> VoteOutcome:
    """Propose adding (or removing) ``address`` on each validator in ``urls``, wait until
    the validator set reflects it, then discard the proposals.

    Refuses before voting when ``urls`` cannot be a majority of the current set."""
    if not urls:
        raise InputError("Name the validators that vote (--rpc URL, one per validator).")
    addr = normalise_account(address)
    before = validators(urls[0], timeout=timeout)
    if (addr in before) == add:
        return VoteOutcome(addr, add, [], before, before, True, [])
    if len(urls) * 2 <= len(before):
        raise InputError(
            f"{len(urls)} voter(s) cannot be a majority of {len(before)} validators: more "
            "than half of the current validators must vote."
        )
    votes = []
    for url in urls:
        try:
            call(url, "qbft_proposeValidatorVote", [addr, add], timeout=timeout)
            votes.append(NodeResult(url, True, "proposed"))
        except GovShareError as exc:
            votes.append(NodeResult(url, False, str(exc)))
    deadline = clock() + wait
    after = before
    done = False
    if sum(v.ok for v in votes) * 2 > len(before):
        while True:
            after = validators(urls[0], timeout=timeout)
            done = (addr in after) == add
            left = deadline - clock()
            if done or left <= 0:
                break
            sleep(min(poll, left))
    discarded = []
    if done:
        for url in urls:
            try:
                call(url, "qbft_discardValidatorVote", [addr], timeout=timeout)
                discarded.append(NodeResult(url, True, "discarded"))
            except GovShareError as exc:
                discarded.append(NodeResult(url, False, str(exc)))
    return VoteOutcome(addr, add, votes, before, after, done, discarded)
