"""Governance as use cases, against a real chain (this module's own anvil):
membership by threshold, execution after the threshold fell, key rotation with
its keystore files, the catalog. Bad input is refused before the first
transaction; a rotation that fails half-way leaves the profile in step with
what did land."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account

from govshare.broker import governance
from govshare.chain.contracts import DepartmentInit, ProposalStatus
from govshare.crypto import load_eth_keystore
from govshare.errors import ContractReverted, InputError
from govshare.profile import create_profile, load_profile
from integration.world import PASSWORD, SCRYPT_N, World

pytestmark = pytest.mark.integration


class Funded(list[str]):
    """A ``fund`` callable that notes who it was asked to fund."""

    def __call__(self, addresses: list[str]) -> None:
        self.extend(addresses)


def test_a_department_joins_when_the_threshold_approves(world: World) -> None:
    ledger = world.ledger
    land = create_profile(
        world.home,
        "LAND",
        "Land Registry",
        endpoint="http://127.0.0.1:9904",
        broker_password=PASSWORD,
        admin_password=PASSWORD,
        scrypt_n=SCRYPT_N,
    )
    init = DepartmentInit(
        code=land.code,
        name=land.name,
        broker=land.broker_address,
        admins=(land.admin_address,),
        encryption_key=land.hpke_public_key,
        endpoint=land.endpoint,
    )
    funded = Funded()
    out = governance.propose_add_department(ledger, world["TAX"].admin, init, fund=funded)
    assert funded == [land.broker_address, land.admin_address]
    pid = out.view.proposal.id
    assert not out.executed and out.view.proposal.status is ProposalStatus.PENDING
    assert (out.view.approved_by, out.view.threshold) == (("TAX",), 2)
    assert [v.proposal.id for v in governance.list_proposals(ledger)] == [pid]
    assert "LAND" not in ledger.registry.active_departments()

    with pytest.raises(ContractReverted) as dup:
        governance.approve_proposal(ledger, world["TAX"].admin, pid)
    assert dup.value.reason == "ConsortiumRegistryAlreadyApproved"
    done = governance.approve_proposal(ledger, world["MARKET"].admin, pid)
    assert done.executed and done.view.proposal.status is ProposalStatus.EXECUTED
    assert done.view.approved_by == ("TAX", "MARKET")
    assert "LAND" in ledger.registry.active_departments()
    assert governance.list_proposals(ledger) == []
    assert [v.proposal.id for v in governance.list_proposals(ledger, include_closed=True)] == [pid]


def test_bad_proposals_are_refused_and_change_nothing(world: World) -> None:
    ledger, admin = world.ledger, world["TAX"].admin
    count = ledger.registry.proposal_count()
    with pytest.raises(InputError, match="not a department code"):
        governance.propose_suspend_department(ledger, admin, "no such code!")
    with pytest.raises(InputError, match="not an Ethereum account"):
        governance.propose_add_supervisor(ledger, admin, "0x1234")
    with pytest.raises(ContractReverted) as bad:
        governance.propose_threshold(ledger, admin, 99)
    assert bad.value.reason == "ConsortiumRegistryInvalidThreshold"
    assert ledger.registry.proposal_count() == count


def test_execute_a_proposal_once_the_threshold_fell(world: World) -> None:
    ledger = world.ledger
    sup = Account.create().address
    waiting = governance.propose_add_supervisor(ledger, world["TAX"].admin, sup)
    pid = waiting.view.proposal.id
    with pytest.raises(ContractReverted):  # one approval of two
        governance.execute_proposal(ledger, world["COURT"].admin, pid)
    lower = governance.propose_threshold(ledger, world["TAX"].admin, 1)
    governance.approve_proposal(ledger, world["MARKET"].admin, lower.view.proposal.id)
    assert ledger.registry.threshold() == 1
    done = governance.execute_proposal(ledger, world["COURT"].admin, pid)
    assert done.executed and done.view.threshold == 1
    assert sup in ledger.registry.supervisors()
    # back to two, for what follows
    governance.propose_threshold(ledger, world["TAX"].admin, 2)
    assert ledger.registry.threshold() == 2


def test_rotation_replaces_the_keys_and_keeps_the_profile_in_step(world: World) -> None:
    ledger, admin = world.ledger, world["COURT"].admin
    prof = load_profile(world.home, "COURT")
    old = ledger.registry.get_department("COURT")
    block = ledger.block_number()
    with pytest.raises(InputError, match="not a broker endpoint"):
        governance.rotate(ledger, admin, prof, endpoint="ftp://nope")
    with pytest.raises(InputError, match="needs a password"):
        governance.rotate(ledger, admin, prof, new_broker_key=True)
    with pytest.raises(InputError, match="not an Ethereum account"):
        governance.rotate(
            ledger, admin, prof, endpoint="http://127.0.0.1:9901", add_admins=["nobody"]
        )
    assert ledger.block_number() == block  # every input checked before the first transaction

    funded = Funded()
    out = governance.rotate(
        ledger,
        admin,
        prof,
        endpoint="http://127.0.0.1:9903/",
        new_broker_key=True,
        new_encryption_key=True,
        key_password=PASSWORD,
        fund=funded,
    )
    new = out.department
    assert set(out.transactions) == {"endpoint", "broker", "encryption_key"}
    assert new.endpoint == "http://127.0.0.1:9903"
    assert new.broker != old.broker and bytes(new.encryption_key) != bytes(old.encryption_key)
    assert funded == [new.broker]  # the new broker key gets gas
    assert load_eth_keystore(prof.broker_keystore, PASSWORD).address == new.broker
    assert load_profile(world.home, "COURT").unlock_hpke(PASSWORD).public_key_bytes == bytes(
        new.encryption_key
    )
    retired = sorted(p.name for p in (prof.dir / "retired").iterdir())
    assert len(retired) == 2 and not list(prof.dir.glob("*.new"))
    saved = load_profile(world.home, "COURT")
    assert (saved.broker_address, saved.endpoint) == (new.broker, new.endpoint)

    extra = Account.create().address
    funded.clear()
    added = governance.rotate(ledger, admin, prof, add_admins=[extra], fund=funded)
    assert extra in added.department.admins and funded == [extra]
    removed = governance.rotate(ledger, admin, prof, remove_admins=[extra])
    assert extra not in removed.department.admins


def test_a_rotation_failing_half_way_saves_what_landed(world: World) -> None:
    ledger, admin = world.ledger, world["COURT"].admin
    prof = load_profile(world.home, "COURT")
    stranger = Account.create().address  # not an admin: removing it reverts
    with pytest.raises(ContractReverted):
        governance.rotate(
            ledger, admin, prof, endpoint="http://127.0.0.1:9910", remove_admins=[stranger]
        )
    assert ledger.registry.get_department("COURT").endpoint == "http://127.0.0.1:9910"
    assert load_profile(world.home, "COURT").endpoint == "http://127.0.0.1:9910"


def test_the_catalog(world: World) -> None:
    ledger, admin = world.ledger, world["MARKET"].admin
    with pytest.raises(InputError, match="description is empty"):
        governance.prepare_declaration("licences", "  ")
    schema = b'{"type": "object"}'
    d = governance.declare_category(
        ledger, admin, "market", "business-licence", "Business licences", schema=schema
    )
    assert d.category.active and d.category.schema_hash == hashlib.sha256(schema).digest()
    assert d.tx_hash.startswith("0x")
    gone = governance.retire_category(ledger, admin, "MARKET", "business-licence")
    assert not gone.category.active
    with pytest.raises(ContractReverted):
        governance.retire_category(ledger, admin, "MARKET", "business-licence")
    with pytest.raises(ContractReverted):  # a broker key cannot declare
        governance.declare_category(ledger, world["TAX"].broker, "TAX", "x-category", "broker key")
    back = governance.declare_category(ledger, admin, "MARKET", "business-licence", "Again")
    assert back.category.active and back.category.description == "Again"
