"""The command line stays thin: flows live in the application layer.

``cli/`` parses, prompts, unlocks keys, calls one use case and renders. It never
sends a transaction through the contract wrappers itself (consent, governance,
catalog, anchoring, requests: ``govshare.broker.consent`` / ``governance`` and
the other use cases do), and it does not import the wrapper classes. An AST
scan of ``src/govshare/cli/*.py`` enforces it; the self-tests below show the
scan catches each way the old code did it.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from govshare.chain import contracts

CLI = Path(contracts.__file__).resolve().parent.parent / "cli"
WRAPPERS = (contracts.ConsortiumRegistry, contracts.RecordRegistry, contracts.AccessLedger)
#: The attributes of a ``Ledger`` that hold the wrappers.
WRAPPER_ATTRS = frozenset({"registry", "records", "access"})
_SENDS = ("TxResult", "Sent[", "PendingTx", "TxRequest")


def state_changing_methods() -> frozenset[str]:
    """Every public wrapper method that signs or builds a transaction: it takes
    an account, or returns a transaction (new ones are covered as they come)."""
    out = set()
    for cls in WRAPPERS:
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_"):
                continue
            sig = inspect.signature(fn)
            takes_account = any(
                "LocalAccount" in str(p.annotation) for p in sig.parameters.values()
            )
            if takes_account or any(s in str(sig.return_annotation) for s in _SENDS):
                out.add(name)
    return frozenset(out)


FORBIDDEN = state_changing_methods()
FORBIDDEN_IMPORTS = frozenset({c.__name__ for c in WRAPPERS} | {"ContractWrapper"})


def _wrapper_expr(node: ast.expr, aliases: set[str]) -> bool:
    """``x.registry`` / ``ledger.access`` …, or a name bound to one."""
    if isinstance(node, ast.Attribute) and node.attr in WRAPPER_ATTRS:
        return True
    return isinstance(node, ast.Name) and node.id in aliases


def violations(source: str, filename: str = "<cli>") -> list[str]:
    """Where ``source`` sends a transaction through a contract wrapper, or
    imports a wrapper class."""
    tree = ast.parse(source, filename)
    aliases = {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _wrapper_expr(node.value, set())
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and f.attr in FORBIDDEN
                and _wrapper_expr(f.value, aliases)
            ):
                found.append(f"{where}: calls the contract wrapper method {f.attr}()")
            if (
                isinstance(f, ast.Name)
                and f.id == "getattr"
                and node.args
                and _wrapper_expr(node.args[0], aliases)
            ):
                found.append(f"{where}: picks a contract wrapper method with getattr()")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("govshare.chain"):
            for a in node.names:
                if a.name in FORBIDDEN_IMPORTS:
                    found.append(f"{where}: imports the contract wrapper {a.name}")
    return found


def test_the_cli_calls_use_cases_not_contract_wrappers() -> None:
    files = sorted(CLI.glob("*.py"))
    assert len(files) > 10, CLI
    found = [v for f in files for v in violations(f.read_text(), f.name)]
    assert found == [], "\n".join(found)


def test_every_state_changing_wrapper_method_is_covered() -> None:
    assert {
        "approve",
        "deny",
        "revoke",
        "remind",
        "escalate",
        "execute",
        "propose_add_department",
        "propose_suspend_department",
        "propose_remove_department",
        "propose_reactivate_department",
        "propose_threshold",
        "propose_add_supervisor",
        "propose_remove_supervisor",
        "set_broker",
        "set_encryption_key",
        "set_endpoint",
        "add_admin",
        "remove_admin",
        "declare_category",
        "retire_category",
        "anchor",
        "anchor_many",
        "anchor_batch",
        "anchor_request",
        "submit_anchor",
        "anchor_receipts",
        "request_access",
    } <= FORBIDDEN
    # reads stay allowed: listing and showing are rendering of chain state
    assert not {"get_request", "requests", "departments", "threshold", "categories"} & FORBIDDEN


@pytest.mark.parametrize(
    "source",
    [
        # cli/grant.py before the consent use cases
        "tx = ledger.access.approve(admin, rid, expires_at=t, max_uses=1, scope=s)",
        "ledger.access.deny(admin, request_id, reason)",
        # cli/supervise.py
        "tx = ledger.access.escalate(account, request_id)",
        # cli/dept.py: the proposal factory, by method name
        "sent = getattr(ledger.registry, method)(admin, target)",
        "changes['broker'] = ledger.registry.set_broker(admin, new.address).tx_hash",
        # cli/catalog.py and cli/devnet.py
        "ledger.records.declare_category(admin, category, description)",
        # an alias does not hide it
        "reg = ledger.registry\nreg.propose_threshold(admin, 3)",
        "from govshare.chain.contracts import ConsortiumRegistry",
    ],
)
def test_the_scan_catches_the_old_ways(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "out = consent.approve(ledger, admin, rid, max_uses=1, expires_in=60, dept='TAX')",
        "users.revoke(name)",  # a broker user's tokens, not consent
        "r = ledger.access.get_request(rid)",
        "from govshare.chain.contracts import AccessRequest, RequestStatus",
    ],
)
def test_the_scan_lets_use_cases_and_reads_through(source: str) -> None:
    assert violations(source) == []
