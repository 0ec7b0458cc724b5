"""Gas of the transactions a broker or an administrator sends most, against ceilings.

Gas is deterministic for given sources, compiler settings and chain state, so a
ceiling a little above today's figure catches a change that makes the common path
dearer (a new store, a lost packing) without flapping. Run with ``-s`` to see the
figures (docs/contracts.md keeps the table).
"""

from __future__ import annotations

from .batches import leaf, make_batch
from .helpers import DAY, b32, h32
from .world import CATEGORY, RECORD, Ops, World

# Today's figures plus about 2 %; lower a ceiling when a change makes a path cheaper.
CEILINGS = {
    "anchor (first version)": 236_000,
    "anchor (next version)": 266_000,
    "requestAccess": 287_000,
    "requestAccess (unconditional)": 321_000,
    "requestBySubject": 251_000,
    "setSharing": 49_000,
    "approve": 120_000,
    "anchorReceipts (first batch, 1 grant)": 169_000,
    "anchorReceipts (next batch, 2 grants)": 168_000,
    "proposeThreshold": 187_000,
    "approve proposal (executes)": 135_000,
    "anchorBatch (256 records)": 177_000,
    "materialise (leaf of 256, first version)": 261_000,
    "materialise (leaf of 256, next version)": 308_000,
}
BATCH = 256


def measure(world: World, ops: Ops) -> dict[str, int]:
    c = world.chain
    rr, led = c.records.functions, c.ledger.functions
    gas: dict[str, int] = {}

    def used(label: str, receipt: object) -> None:
        gas[label] = int(receipt["gasUsed"])  # type: ignore[index]

    broker, sha = world.broker("TAX"), h32("gas:content")
    v1, v2 = h32("gas:v1"), h32("gas:v2")
    first = rr.anchor(v1, sha, "bafy-gas-1", CATEGORY["TAX"], h32("gas:subject"), b"\0" * 32)
    used("anchor (first version)", c.send(first, broker))
    nxt = rr.anchor(v2, sha, "bafy-gas-2", CATEGORY["TAX"], h32("gas:subject"), v1)
    used("anchor (next version)", c.send(nxt, broker))

    req = led.requestAccess(
        b32("TAX"), RECORD["TAX"], "licence check", "Licensing Act s.5", c.now() + DAY
    )
    used("requestAccess", c.send(req, world.broker("MARKET")))
    g1 = int(led.requestCount().call())
    scope = b"read".ljust(32, b"\0")
    used("approve", c.send(led.approve(g1, scope, c.now() + 30 * DAY, 5), world.admin("TAX")))

    used("anchorReceipts (first batch, 1 grant)", ops.receipts("TAX", 1, 1, [g1], [1]))
    g2 = ops.grant("COURT", "TAX")
    used("anchorReceipts (next batch, 2 grants)", ops.receipts("TAX", 2, 3, [g1, g2], [1, 1]))

    cat = CATEGORY["TAX"]
    used("setSharing", c.send(rr.setSharing(cat, 1, 30 * DAY, 5), world.admin("TAX")))
    req = led.requestAccess(b32("TAX"), v2, "licence check", "Licensing Act s.5", c.now() + DAY)
    used("requestAccess (unconditional)", c.send(req, world.broker("MARKET")))
    c.send(rr.setSharing(cat, 0, 0, 0), world.admin("TAX"))
    req = led.requestBySubject(
        b32("TAX"), cat, h32("gas:subject"), False, "licence check", "Licensing Act s.5",
        c.now() + DAY,
    )  # fmt: skip
    used("requestBySubject", c.send(req, world.broker("MARKET")))

    reg = c.registry.functions
    used("proposeThreshold", c.send(reg.proposeThreshold(3), world.admin("TAX")))
    pid = int(reg.proposalCount().call())
    used("approve proposal (executes)", c.send(reg.approve(pid), world.admin("MARKET")))
    assert reg.threshold().call() == 3

    leaves = [leaf(f"gas:{i}") for i in range(BATCH - 1)]
    leaves.append(leaf("gas:next", previous=leaves[0].record_id))
    batch = make_batch("TAX", leaves)
    # (a CIDv1 of the usual 59 characters, as a manifest's is)
    fn = rr.anchorBatch(
        batch.root, BATCH, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    )
    used("anchorBatch (256 records)", c.send(fn, broker))
    batch.sequence, batch.records = int(rr.batchCount(b32("TAX")).call()), c.records
    requester = world.broker("MARKET")
    used("materialise (leaf of 256, first version)", c.send(batch.materialise(0), requester))
    used("materialise (leaf of 256, next version)", c.send(batch.materialise(BATCH - 1), requester))
    return gas


def test_gas_of_the_common_transactions(world: World, ops: Ops) -> None:
    gas = measure(world, ops)
    print()
    for label, value in gas.items():
        print(f"  {label:<42} {value:>9,}")
    per_record = gas["anchorBatch (256 records)"] / BATCH
    print(f"  {'anchorBatch per record':<42} {per_record:>9,.0f}")
    over = {k: (v, CEILINGS[k]) for k, v in gas.items() if v > CEILINGS[k]}
    assert not over, f"gas above its ceiling (used, ceiling): {over}"
    # The point of batches: per record, at most a twentieth of a single anchor.
    assert per_record * 20 <= gas["anchor (first version)"]
