"""Governance of the consortium: membership votes, a department's own registry
entry (key rotation), and its catalog of record categories.

    out = propose_add_department(ledger, admin, init, fund=funder)
    out.view.proposal.id, out.executed                 # executed: the threshold was met at once
    approve_proposal(ledger, other_admin, out.view.proposal.id)
    rotate(ledger, admin, profile, new_broker_key=True, key_password=pw, fund=funder)
    declare_category(ledger, admin, "TAX", "tax-clearance", "Tax clearance certificates")

Every transaction here is signed by an *administrator's* key (a ``LocalAccount``
the caller unlocked): a broker key cannot vote, rotate or declare; the contract
refuses it. Each action returns what the chain holds after it, for the caller
to render.

Funding new accounts with gas on the dev chain is the caller's business: the
actions that bring in an account (a new department's, an added administrator,
a new broker key) hand it to ``fund`` — a callable taking a list of addresses —
when one is given, at the moment it needs the funds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govshare.chain.contracts import (
    Category,
    Department,
    DepartmentInit,
    Proposal,
    ProposalStatus,
    Sent,
    SharingType,
    to_address,
)
from govshare.chain.ledger import Ledger
from govshare.chain.tx import TxResult
from govshare.crypto import EthKey, generate_keypair, save_eth_keystore, save_hpke_key
from govshare.crypto.keys import KEMS, kem_of
from govshare.errors import InputError, OutOfRange
from govshare.profile import BROKER_KEYSTORE, HPKE_KEY, Profile, check_endpoint, normalise_code
from govshare.util import MAX_GRANT_EXPIRY, parse_duration

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

#: Gives gas to new accounts (on the dev chain); called with their addresses.
Funder = Callable[[Sequence[str]], object]


# -- proposals --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposalView:
    """A proposal, the departments that approved it, and the threshold it needs."""

    proposal: Proposal
    approved_by: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class ProposalOutcome:
    """A governance transaction that was mined, and the proposal after it."""

    view: ProposalView
    tx: TxResult
    executed: bool

    @property
    def tx_hash(self) -> str:
        """The transaction's hash."""
        return self.tx.tx_hash

    @property
    def block_number(self) -> int:
        """The block the transaction was mined in."""
        return self.tx.block_number


def proposal_view(
    ledger: Ledger, proposal_id: int, *, threshold: int | None = None
) -> ProposalView:
    """Proposal ``proposal_id`` as the chain holds it now (the contract's error
    for an unknown one)."""
    p = ledger.registry.get_proposal(int(proposal_id))
    return ProposalView(
        p,
        tuple(ledger.registry.proposal_approvals(p.id)),
        ledger.registry.threshold() if threshold is None else threshold,
    )


def list_proposals(ledger: Ledger, *, include_closed: bool = False) -> list[ProposalView]:
    """Open proposals (``include_closed``: executed and expired ones too), oldest first."""
    threshold = ledger.registry.threshold()
    return [
        proposal_view(ledger, p.id, threshold=threshold)
        for p in ledger.registry.proposals()
        if include_closed or p.status is ProposalStatus.PENDING
    ]


def _proposed(ledger: Ledger, sent: Sent[int]) -> ProposalOutcome:
    view = proposal_view(ledger, int(sent.value))
    return ProposalOutcome(view, sent.tx, view.proposal.status is ProposalStatus.EXECUTED)


def propose_add_department(
    ledger: Ledger, admin: LocalAccount, init: DepartmentInit, *, fund: Funder | None = None
) -> ProposalOutcome:
    """Propose admitting a department (its public entry: code, name, accounts,
    encryption key, endpoint). Its accounts get gas from ``fund``."""
    sent = ledger.registry.propose_add_department(admin, init)
    if fund is not None:
        fund([init.broker, *init.admins])
    return _proposed(ledger, sent)


def propose_suspend_department(ledger: Ledger, admin: LocalAccount, code: str) -> ProposalOutcome:
    """Propose suspending a member department."""
    return _proposed(
        ledger, ledger.registry.propose_suspend_department(admin, normalise_code(code))
    )


def propose_remove_department(ledger: Ledger, admin: LocalAccount, code: str) -> ProposalOutcome:
    """Propose removing a department for good."""
    return _proposed(ledger, ledger.registry.propose_remove_department(admin, normalise_code(code)))


def propose_reactivate_department(
    ledger: Ledger, admin: LocalAccount, code: str
) -> ProposalOutcome:
    """Propose reactivating a suspended department."""
    sent = ledger.registry.propose_reactivate_department(admin, normalise_code(code))
    return _proposed(ledger, sent)


def propose_threshold(ledger: Ledger, admin: LocalAccount, threshold: int) -> ProposalOutcome:
    """Propose a new approval threshold (the contract bounds it by the member count)."""
    return _proposed(ledger, ledger.registry.propose_threshold(admin, int(threshold)))


def propose_add_supervisor(ledger: Ledger, admin: LocalAccount, account: str) -> ProposalOutcome:
    """Propose an account as a supervisor (it receives escalations)."""
    sent = ledger.registry.propose_add_supervisor(admin, to_address(account))
    return _proposed(ledger, sent)


def propose_remove_supervisor(ledger: Ledger, admin: LocalAccount, account: str) -> ProposalOutcome:
    """Propose removing a supervisor."""
    sent = ledger.registry.propose_remove_supervisor(admin, to_address(account))
    return _proposed(ledger, sent)


def approve_proposal(ledger: Ledger, admin: LocalAccount, proposal_id: int) -> ProposalOutcome:
    """Approve a proposal for the signer's department; it executes in the same
    transaction once the threshold is met (``executed``)."""
    sent = ledger.registry.approve(admin, int(proposal_id))
    return ProposalOutcome(proposal_view(ledger, proposal_id), sent.tx, bool(sent.value))


def execute_proposal(ledger: Ledger, admin: LocalAccount, proposal_id: int) -> ProposalOutcome:
    """Execute a proposal whose approvals reached the threshold but which did
    not execute (the threshold fell after the last approval, say)."""
    tx = ledger.registry.execute(admin, int(proposal_id))
    view = proposal_view(ledger, proposal_id)
    return ProposalOutcome(view, tx, view.proposal.status is ProposalStatus.EXECUTED)


# -- a department's own entry: rotation ----------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """What a rotation changed: the registry entry after it, and the
    transaction hashes by change (``endpoint``, ``broker``, ``encryption_key``,
    ``admins_added``, ``admins_removed``)."""

    department: Department
    transactions: dict[str, Any] = field(default_factory=dict)


def retire_key_file(path: Path) -> Path:
    """Move a replaced key file to ``retired/`` beside it (old capsules and
    signatures may still need it); returns its new path."""
    retired = path.parent / "retired"
    retired.mkdir(mode=0o700, exist_ok=True)
    target = retired / f"{int(time.time())}-{path.name}"
    os.replace(path, target)
    return target


def rotate(
    ledger: Ledger,
    admin: LocalAccount,
    profile: Profile,
    *,
    endpoint: str | None = None,
    new_broker_key: bool = False,
    new_encryption_key: bool = False,
    encryption_kem: str | None = None,
    add_admins: Iterable[str] = (),
    remove_admins: Iterable[str] = (),
    key_password: str | None = None,
    fund: Funder | None = None,
) -> Rotation:
    """Change the department's own registry entry, signed by one of its
    administrators, and keep ``profile`` (its files) in step.

    In this order: the endpoint; added admins; a new broker key; a new HPKE key;
    removed admins (last, so the signer never removes itself before the rest).
    ``encryption_kem`` makes the new HPKE key of that KEM (``x25519`` or
    ``mlkem768-x25519``; default: the current key's) and implies a new one.
    A new key is written beside the old one (encrypted with ``key_password``),
    registered, and only then put in place; the old file moves to ``retired/``.
    Every input is checked before the first transaction; the profile is saved
    with whatever was changed on chain, even when a later step fails.
    """
    url = check_endpoint(endpoint) if endpoint else None
    added = [to_address(a) for a in add_admins]
    removed = [to_address(a) for a in remove_admins]
    if encryption_kem is not None:
        if encryption_kem not in KEMS:
            raise InputError(f"Unknown KEM {encryption_kem!r}: choose one of {', '.join(KEMS)}.")
        new_encryption_key = True  # a KEM names the new key's
    if (new_broker_key or new_encryption_key) and not key_password:
        raise InputError("A new key needs a password to encrypt its keystore with.")
    changes: dict[str, Any] = {}
    try:
        if url:
            changes["endpoint"] = ledger.registry.set_endpoint(admin, url).tx_hash
            profile.endpoint = url
        for a in added:
            changes.setdefault("admins_added", []).append(
                ledger.registry.add_admin(admin, a).tx_hash
            )
            if fund is not None:
                fund([a])
        if new_broker_key:
            changes["broker"] = _rotate_broker(ledger, profile, admin, str(key_password), fund)
        if new_encryption_key:
            changes["encryption_key"] = _rotate_hpke(
                ledger, profile, admin, str(key_password), encryption_kem
            )
        for a in removed:
            changes.setdefault("admins_removed", []).append(
                ledger.registry.remove_admin(admin, a).tx_hash
            )
    finally:
        profile.save()  # the profile follows the chain, also after a partial rotation
    return Rotation(ledger.registry.get_department(profile.code), changes)


def _rotate_broker(
    ledger: Ledger, prof: Profile, admin: LocalAccount, pw: str, fund: Funder | None
) -> str:
    new = EthKey.generate()
    tmp = prof.dir / (BROKER_KEYSTORE + ".new")
    save_eth_keystore(tmp, new, pw, overwrite=True)
    try:
        if fund is not None:
            fund([new.address])  # before it is registered: the broker can transact at once
        tx = ledger.registry.set_broker(admin, new.address).tx_hash
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    retire_key_file(prof.broker_keystore)
    os.replace(tmp, prof.broker_keystore)
    prof.broker_address = new.address
    return tx


def _rotate_hpke(
    ledger: Ledger, prof: Profile, admin: LocalAccount, pw: str, kem: str | None
) -> str:
    """A new HPKE key of ``kem`` (default: the current key's), registered."""
    key, public = generate_keypair(kem or kem_of(prof.hpke_public_key))
    tmp = prof.dir / (HPKE_KEY + ".new")
    save_hpke_key(tmp, key, pw, dept=prof.code, overwrite=True)
    try:
        tx = ledger.registry.set_encryption_key(admin, public).tx_hash
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    retire_key_file(prof.hpke_key_file)
    os.replace(tmp, prof.hpke_key_file)
    prof.hpke_public_key = public
    return tx


# -- the catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class Declaration:
    """A checked catalog declaration, ready to send."""

    category: str
    description: str
    schema_hash: bytes | None


@dataclass(frozen=True)
class CatalogChange:
    """A catalog transaction that was mined, and the category's entry after it."""

    category: Category
    tx: TxResult | None  # the last one sent (None: nothing needed changing)
    txs: tuple[TxResult, ...] = ()

    @property
    def tx_hash(self) -> str | None:
        """The last transaction's hash."""
        return self.tx.tx_hash if self.tx is not None else None


def prepare_declaration(
    category: str, description: str, *, schema: bytes | None = None
) -> Declaration:
    """Check a declaration before anything is unlocked or signed; a schema
    document is recorded on chain as its SHA-256."""
    text = (description or "").strip()
    if not text:
        raise InputError("The description is empty: say what these records hold.")
    digest = hashlib.sha256(schema).digest() if schema is not None else None
    return Declaration(category, description, digest)


_SHARING_NAMES = {t.value: t for t in SharingType}
#: What an unconditional category's grants get when its declaration names no defaults:
#: the least (one use) for a month.
DEFAULT_UNCONDITIONAL_TTL = 30 * 86400
DEFAULT_UNCONDITIONAL_USES = 1


@dataclass(frozen=True)
class SharingChoice:
    """A checked sharing type and its grant defaults, ready to send."""

    sharing: SharingType
    default_ttl: int
    default_max_uses: int


def prepare_sharing(
    sharing: str, default_expires: str | None = None, default_max_uses: int | None = None
) -> SharingChoice:
    """Check a category's sharing type (``conditional``, ``unconditional``, ``none``)
    and grant defaults (a duration like ``30d``; a number of uses) before anything
    is signed. An unconditional category without defaults gets 30 days and 1 use."""
    kind = _SHARING_NAMES.get((sharing or "").strip().lower())
    if kind is None:
        raise InputError(
            f"{sharing!r} is not a sharing type: use conditional, unconditional or none."
        )
    ttl = (
        parse_duration(default_expires, MAX_GRANT_EXPIRY, what="default grant lifetime")
        if default_expires
        else 0
    )
    uses = int(default_max_uses or 0)
    if default_max_uses is not None and not 1 <= uses <= 2**32 - 1:
        raise OutOfRange("A default number of uses is 1 to 4,294,967,295.", maximum=2**32 - 1)
    if kind is SharingType.NONE and (ttl or uses):
        raise InputError("A category that is not shared takes no grant defaults.")
    if kind is SharingType.UNCONDITIONAL:
        ttl, uses = ttl or DEFAULT_UNCONDITIONAL_TTL, uses or DEFAULT_UNCONDITIONAL_USES
    if kind is SharingType.CONDITIONAL and bool(ttl) != bool(uses):
        raise InputError(
            "A conditional category's grant defaults come as a pair: give both "
            "--default-expires and --default-max-uses, or neither."
        )
    return SharingChoice(kind, ttl, uses)


def check_catalog_change(
    ledger: Ledger,
    dept: str,
    category: str,
    description: str | None,
    sharing: SharingChoice | None,
) -> None:
    """Refuse a catalog change that cannot be made, before any key is unlocked:
    nothing to change, or a new category without a description."""
    if description is None and sharing is None:
        raise InputError("Say what to change: a description, a sharing type, or both.")
    if description is None and not ledger.records.category_sharing(dept, category).declared:
        raise InputError(
            f"{category!r} is not in {normalise_code(dept)}'s catalog yet: a new category "
            "needs a description (--description)."
        )


def declare_category(
    ledger: Ledger,
    admin: LocalAccount,
    dept: str,
    category: str,
    description: str | None,
    *,
    schema: bytes | None = None,
    sharing: SharingChoice | None = None,
) -> CatalogChange:
    """Declare (or update) ``category`` in ``dept``'s catalog, and set how it is
    shared, signed by one of its administrators: a declaration when a description
    is given (a new category needs one), then a sharing change when ``sharing``
    differs from the category's (each its own transaction and event)."""
    dept = normalise_code(dept)
    check_catalog_change(ledger, dept, category, description, sharing)
    txs: list[TxResult] = []
    if description is not None:
        d = prepare_declaration(category, description, schema=schema)
        txs.append(ledger.records.declare_category(admin, d.category, d.description, d.schema_hash))
    if sharing is not None:
        now = ledger.records.get_category(dept, category)
        wanted = (sharing.sharing, sharing.default_ttl, sharing.default_max_uses)
        if (now.sharing, now.default_ttl, now.default_max_uses) != wanted:
            txs.append(
                ledger.records.set_sharing(
                    admin,
                    category,
                    sharing.sharing,
                    default_ttl=sharing.default_ttl,
                    default_max_uses=sharing.default_max_uses,
                )
            )
    entry = ledger.records.get_category(dept, category)
    return CatalogChange(entry, txs[-1] if txs else None, tuple(txs))


def retire_category(ledger: Ledger, admin: LocalAccount, dept: str, category: str) -> CatalogChange:
    """Retire ``category`` from ``dept``'s catalog: no new records of it can be
    anchored (existing ones stay)."""
    tx = ledger.records.retire_category(admin, category)
    return CatalogChange(ledger.records.get_category(normalise_code(dept), category), tx, (tx,))
