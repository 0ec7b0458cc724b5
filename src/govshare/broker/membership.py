"""Is this broker's department an active member of the consortium?

Publishing and anchoring receipts need an active department: the contracts
refuse both for a suspended or removed one (``AccessLedgerNotActiveBroker``,
``RecordRegistry``'s own check). Asking first keeps a refused publish from
storing its ciphertext, and the receipt batcher from retrying a transaction
that cannot succeed.

Where the answer comes from: the broker's :class:`~govshare.broker.peercache.ChainCache`
entry for the department, which the ledger mirror drops at the tick that sees any
``ConsortiumRegistry`` event (a suspension, removal or reinstatement is one) and
which is re-read after 60 s at most. It answers "active" without a round trip
(a bulk import publishes thousands of records); an answer of "not active" is
confirmed by a live read before anything is refused, as the catalog check does:
a refusal is never from the cache. A suspension that lands between two mirror
ticks (the sync interval, 5 s by default) can let one publish store its
ciphertext; its anchor is then refused by the contract, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from govshare.broker.errors import DepartmentInactive
from govshare.chain.contracts import DepartmentStatus

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices


def status(svc: BrokerServices, *, live: bool = False) -> DepartmentStatus:
    """This department's status in the registry: from the cache (see the module's
    documentation) unless ``live``, and live whenever the cache says not active."""
    if not live:
        cached = svc.chain_cache.department(svc.dept).status
        if cached is DepartmentStatus.ACTIVE:
            return cached
    return svc.ledger.registry.department_status(svc.dept)


def require_active(svc: BrokerServices, doing: str) -> None:
    """Raise :class:`DepartmentInactive` unless this department is active (``doing``
    says what was refused, e.g. "publish")."""
    st = status(svc)
    if st is not DepartmentStatus.ACTIVE:
        raise DepartmentInactive(
            f"{svc.dept} is {st.value} in the consortium's registry: it cannot {doing} "
            "until a consortium vote reinstates it. Nothing was stored.",
            department=svc.dept,
            status=st.value,
        )
