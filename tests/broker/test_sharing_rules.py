"""The rules of catalog-driven sharing that need no chain: which versions a grant
by subject covers, and what a category's sharing declaration may say."""

from __future__ import annotations

import itertools

import pytest

from govshare.broker.governance import prepare_sharing
from govshare.chain.contracts import SharingType, covers
from govshare.errors import InputError, OutOfRange

DECIDED = 1_000


@pytest.mark.parametrize(
    ("anchored", "superseded", "latest_only", "expected"),
    [
        (900, None, False, True),  # current when granted, still current
        (900, None, True, True),
        (900, 950, False, False),  # superseded before the grant
        (900, 950, True, False),
        (900, 1_000, False, False),  # superseded in the grant's very block: not current then
        (900, 1_001, True, True),  # superseded after the grant: it was current then
        (1_000, None, True, True),  # anchored in the grant's block: current then
        (1_001, None, False, True),  # published after the grant
        (1_001, None, True, False),  # ... but latest only
        (1_001, 2_000, False, True),  # published after, since superseded: still covered
    ],
)
def test_covers(anchored: int, superseded: int | None, latest_only: bool, expected: bool) -> None:
    got = covers(
        latest_only=latest_only, decided_at=DECIDED, anchored_at=anchored, superseded_at=superseded
    )
    assert got is expected


def test_a_version_chain_has_exactly_one_version_current_when_granted() -> None:
    """Over every chain of versions and every decision time, a latest-only grant
    covers exactly one version once the first was anchored (none before), and a
    full grant covers that one and every later one."""
    for times in itertools.combinations(range(0, 12, 2), 3):
        for decided in range(-1, 13):
            anchored = list(times)
            superseded: list[int | None] = [*anchored[1:], None]
            only = [
                covers(latest_only=True, decided_at=decided, anchored_at=a, superseded_at=s)
                for a, s in zip(anchored, superseded, strict=True)
            ]
            full = [
                covers(latest_only=False, decided_at=decided, anchored_at=a, superseded_at=s)
                for a, s in zip(anchored, superseded, strict=True)
            ]
            assert sum(only) == (1 if decided >= anchored[0] else 0)
            first = only.index(True) if any(only) else 0
            assert full == [i >= first for i in range(3)]


def test_sharing_declarations() -> None:
    assert prepare_sharing("Unconditional").default_ttl == 30 * 86400
    choice = prepare_sharing("unconditional", "2w", 3)
    assert (choice.sharing, choice.default_ttl, choice.default_max_uses) == (
        SharingType.UNCONDITIONAL, 14 * 86400, 3,
    )  # fmt: skip
    assert prepare_sharing("none").sharing is SharingType.NONE
    assert prepare_sharing("conditional", "1d", 2).default_max_uses == 2
    assert prepare_sharing("conditional").default_ttl == 0


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("sometimes",), InputError, "not a sharing type"),
        (("",), InputError, "not a sharing type"),
        (("none", "1d", None), InputError, "takes no grant defaults"),
        (("none", None, 1), InputError, "takes no grant defaults"),
        (("conditional", "1d", None), InputError, "come as a pair"),
        (("unconditional", "3651d", 1), OutOfRange, "too long"),
        (("unconditional", "0d", 1), InputError, "not a duration"),
        (("unconditional", "1d", 0), OutOfRange, "1 to 4,294,967,295"),
        (("unconditional", "1d", 2**32), OutOfRange, "1 to 4,294,967,295"),
    ],
)
def test_bad_sharing_declarations(args: tuple, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        prepare_sharing(*args)
