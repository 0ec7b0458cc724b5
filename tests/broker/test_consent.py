"""Consent and supervision as use cases, against a real chain (this module's own
anvil): every check before signing, the expiry in chain time, typed results;
each refusal a sentence, with nothing sent."""

from __future__ import annotations

import hashlib
import os

import pytest

from govshare.broker import consent, governance
from govshare.broker.errors import IdentifierInText
from govshare.chain.contracts import GrantReason, RequestStatus
from govshare.errors import ContractReverted, InputError, NotFound, Unauthorized
from integration.world import CATEGORY, World

pytestmark = pytest.mark.integration


def ask(world: World, requester: str = "MARKET", deadline_in: int = 3600) -> int:
    """A fresh TAX record, and ``requester``'s request for it (broker key)."""
    rid = "0x" + os.urandom(32).hex()
    ledger = world.ledger
    ledger.records.anchor(
        world["TAX"].broker, rid, hashlib.sha256(rid.encode()).digest(), "bafkreiexample", CATEGORY
    )
    sent = ledger.access.request_access(
        world[requester].broker, "TAX", rid, "licence", "art. 5", ledger.now() + deadline_in
    )
    return int(sent.value)


def test_approve_checks_first_then_consents_in_chain_time(world: World) -> None:
    ledger, admin = world.ledger, world["TAX"].admin
    rid = ask(world)
    before = ledger.block_number()
    with pytest.raises(NotFound, match="no request 999999"):
        consent.prepare_approval(ledger, 999_999, dept="TAX", max_uses=1, expires_in=60)
    with pytest.raises(NotFound):
        consent.prepare_approval(ledger, 0, dept="TAX", max_uses=1, expires_in=60)
    with pytest.raises(InputError, match="only an administrator of TAX"):
        consent.prepare_approval(ledger, rid, dept="MARKET", max_uses=1, expires_in=60)
    with pytest.raises(InputError, match="at least one use"):
        consent.prepare_approval(ledger, rid, dept="TAX", max_uses=0, expires_in=60)
    with pytest.raises(InputError, match="one of them"):
        consent.prepare_approval(ledger, rid, dept="TAX", max_uses=1)
    with pytest.raises(InputError, match="one of them"):
        consent.prepare_approval(ledger, rid, dept="TAX", max_uses=1, expires_in=1, expires_at=2)
    # the same refusals from the action itself, before it signs
    with pytest.raises(InputError, match="only an administrator of TAX"):
        consent.approve(ledger, admin, rid, max_uses=1, expires_in=60, dept="MARKET")
    assert ledger.block_number() == before  # nothing was sent

    plan = consent.prepare_approval(ledger, rid, dept="TAX", max_uses=3, expires_in=3600)
    assert plan.request.id == rid and plan.request.status is RequestStatus.PENDING
    assert abs(plan.expires_at - (ledger.now() + 3600)) <= 5  # chain time, not the wall clock
    done = consent.approve(
        ledger, admin, rid, max_uses=3, expires_at=plan.expires_at, scope="read", dept="TAX"
    )
    assert done.request.status is RequestStatus.APPROVED
    assert (done.request.expires_at, done.request.max_uses) == (plan.expires_at, 3)
    assert done.request.decided_by == admin.address and done.request.scope_label == "read"
    assert done.grant.usable and done.tx_hash.startswith("0x") and done.block_number > before
    # a decision the contract refuses keeps its revert reason
    with pytest.raises(ContractReverted) as again:
        consent.approve(ledger, admin, rid, max_uses=1, expires_in=60, dept="TAX")
    assert again.value.reason == "AccessLedgerRequestNotPending"


def test_only_the_owner_admin_consents(world: World) -> None:
    ledger = world.ledger
    rid = ask(world)
    # without dept the owner check is the contract's: a broker key, another admin
    for who in (world["TAX"].broker, world["MARKET"].admin):
        with pytest.raises(Unauthorized):
            consent.approve(ledger, who, rid, max_uses=1, expires_in=60)
    assert ledger.access.get_request(rid).status is RequestStatus.PENDING


def test_deny_and_revoke_need_a_reason_and_report_the_outcome(world: World) -> None:
    ledger, admin = world.ledger, world["TAX"].admin
    denied, granted = ask(world), ask(world, "COURT")
    before = ledger.block_number()
    for blank in ("", "   "):
        with pytest.raises(InputError, match="Say why the request is denied"):
            consent.deny(ledger, admin, denied, blank, dept="TAX")
        with pytest.raises(InputError, match="Say why the grant is revoked"):
            consent.prepare_revocation(ledger, granted, blank, dept="TAX")
    with pytest.raises(InputError, match="only an administrator"):
        consent.prepare_denial(ledger, denied, "no", dept="COURT")
    assert ledger.block_number() == before

    out = consent.deny(ledger, admin, denied, "  no legal basis ", dept="TAX")
    assert out.request.status is RequestStatus.DENIED
    assert out.request.deny_reason == "no legal basis" and not out.grant.usable

    consent.approve(ledger, admin, granted, max_uses=1, expires_in=600, dept="TAX")
    gone = consent.revoke(ledger, admin, granted, "case closed", dept="TAX")
    assert gone.request.status is RequestStatus.REVOKED
    assert gone.request.revoke_reason == "case closed"
    assert (gone.grant.usable, gone.grant.reason) == (False, GrantReason.REVOKED)


def test_the_supervision_loop(world: World) -> None:
    ledger = world.ledger
    rid = ask(world, deadline_in=60)
    market = world["MARKET"]
    with pytest.raises(InputError, match="not overdue"):
        consent.prepare_reminder(ledger, rid, dept="MARKET")
    with pytest.raises(NotFound):
        consent.remind(ledger, market.admin, 999_999, dept="MARKET")
    ledger.conn.request("evm_increaseTime", [300])
    ledger.conn.request("evm_mine", [])
    with pytest.raises(InputError, match="only the requesting department"):
        consent.prepare_reminder(ledger, rid, dept="COURT")

    first = consent.remind(ledger, market.admin, rid, dept="MARKET")
    assert first.request.reminder_count == 1 and first.request.last_reminded_at > 0
    second = consent.remind(ledger, market.broker, rid, dept="MARKET")  # the broker key may too
    assert second.request.reminder_count == 2

    with pytest.raises(InputError, match="no supervisors"):
        consent.prepare_escalation(ledger, rid, dept="MARKET")
    sup = "0x" + "5e" * 20
    pid = governance.propose_add_supervisor(ledger, world["TAX"].admin, sup).view.proposal.id
    assert governance.approve_proposal(ledger, world["COURT"].admin, pid).executed
    plan = consent.prepare_escalation(ledger, rid, dept="MARKET")
    assert plan.request.id == rid and plan.supervisors
    up = consent.escalate(ledger, market.admin, rid, dept="MARKET")
    assert up.request.escalation_count == 1 and up.supervisors == plan.supervisors

    # the decision closes the loop
    consent.approve(ledger, world["TAX"].admin, rid, max_uses=1, expires_in=60, dept="TAX")
    for prepare in (consent.prepare_reminder, consent.prepare_escalation):
        with pytest.raises(InputError, match="approved already"):
            prepare(ledger, rid, dept="MARKET")


def test_a_decision_whose_nonce_is_taken_before_it_goes_out_is_signed_again_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal keeps the bytes the broker may send again, so they must be
    able to land: signed on the node's nonce even when another process used the
    administrator's key since this one did, and — if another transaction takes
    that nonce between signing and sending — withdrawn and signed once more.
    One decision, one live journal entry, one approval on chain."""
    from eth_account.signers.local import LocalAccount
    from sqlalchemy import select

    from govshare.broker.db import Database, Operation
    from govshare.broker.signed import KIND, department_journal
    from govshare.chain.tx import Sender, SignedTx, TxRequest, signed_transaction

    ledger, admin = world.ledger, world["TAX"].admin
    Database.for_department(world.home, "TAX").close()  # the broker's journal exists
    rid = ask(world)
    consent.approve(ledger, admin, rid, dept="TAX", max_uses=1, expires_in=60)  # nonce cached

    def elsewhere(nonce: int) -> None:  # the CLI in another process, say
        raw, _ = signed_transaction(
            admin,
            {
                "chainId": ledger.conn.chain_id, "nonce": nonce, "gas": 21_000,
                "to": admin.address, "value": 1, "data": b"", **ledger.sender.gas.fees(),
            },
        )  # fmt: skip
        ledger.conn.send_raw_transaction(raw)

    elsewhere(ledger.conn.get_transaction_count(admin.address, "pending"))
    signatures: list[int] = []
    real_sign = Sender.sign

    def racing_sign(self: Sender, account: LocalAccount, req: TxRequest) -> SignedTx:
        signed = real_sign(self, account, req)
        signatures.append(signed.nonce)
        if len(signatures) == 1:
            elsewhere(signed.nonce)  # takes the slot between signing and sending
        return signed

    monkeypatch.setattr(Sender, "sign", racing_sign)
    second = ask(world)
    with department_journal(world.home, "TAX", ledger) as journal:
        assert journal is not None
        done = consent.approve(
            ledger, admin, second, dept="TAX", max_uses=1, expires_in=60, journal=journal
        )
    assert done.request.status is RequestStatus.APPROVED
    assert len(signatures) == 2 and signatures[1] == signatures[0] + 1
    db = Database.for_department(world.home, "TAX")
    try:
        with db.session(readonly=True) as s:
            ops = {
                o.idempotency_key: (o.state, o.payload["nonce"], (o.error or {}).get("code"))
                for o in s.scalars(select(Operation).where(Operation.kind == KIND))
                if int(o.payload["nonce"]) in signatures
            }
    finally:
        db.close()
    assert ops[done.tx_hash] == ("pending", signatures[1], None)  # the broker confirms it
    assert [v for k, v in ops.items() if k != done.tx_hash] == [
        ("failed", signatures[0], "nonce_used")
    ]


def test_a_reason_that_names_a_subject_is_refused_before_anything_is_sent(world: World) -> None:
    ledger, admin = world.ledger, world["TAX"].admin
    denied, granted = ask(world), ask(world, "COURT")
    consent.approve(ledger, admin, granted, max_uses=1, expires_in=600, dept="TAX")
    before = ledger.block_number()
    for reason in ("91110000710928411X has no licence", "citizen 110105 19900101 1234"):
        with pytest.raises(IdentifierInText, match="goes on chain"):
            consent.deny(ledger, admin, denied, reason, dept="TAX")
        with pytest.raises(IdentifierInText):
            consent.revoke(ledger, admin, granted, reason, dept="TAX")
    assert ledger.block_number() == before  # nothing was signed or sent
    assert ledger.access.get_request(denied).status is RequestStatus.PENDING
    assert ledger.access.grant_status(granted).usable
