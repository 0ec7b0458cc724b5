"""Benchmark: put throughput of the local blob store as its pin set grows.

Seeds a store with N pins (0, 10k, 100k by default; the pins are of blocks the
store does not hold, which is all a pin-set write has to carry), then times
``--puts`` puts of ``--kib`` KiB each, pinned, as the broker's publish does.
Prints puts/s per pin-set size; ``--json`` adds one JSON object as the last line.

    python scripts/bench/bench_pins.py
    python scripts/bench/bench_pins.py --sizes 0,10000 --puts 100
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from govshare.storage import LocalBlobStore
from govshare.storage.cid import CID

RAW = 0x55


def fake_pins(n: int) -> list[CID]:
    return [CID.for_block(i.to_bytes(8, "big"), codec=RAW) for i in range(n)]


def seed(store: LocalBlobStore, n: int) -> None:
    """Give ``store`` n pins by the fastest means its pin index allows."""
    if n == 0:
        return
    store._add_pins(fake_pins(n))  # seeding the pin set directly, as one write


def run(size: int, puts: int, kib: int, where: Path) -> float:
    root = where / f"store-{size}"
    store = LocalBlobStore(root)
    seed(store, size)
    payloads = [os.urandom(kib * 1024) for _ in range(puts)]
    t0 = time.perf_counter()
    for p in payloads:
        store.put(io.BytesIO(p))
    rate = puts / (time.perf_counter() - t0)
    assert len(store.pins()) == size + puts
    shutil.rmtree(root)
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0,10000,100000", help="pin-set sizes (comma-separated)")
    ap.add_argument("--puts", type=int, default=200, help="puts timed per size (default 200)")
    ap.add_argument("--kib", type=int, default=4, help="payload size in KiB (default 4)")
    ap.add_argument("--dir", default=None, help="where to put the stores (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    where = Path(tempfile.mkdtemp(prefix="bench-pins-", dir=args.dir))
    out: dict[str, float] = {}
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            rate = run(size, args.puts, args.kib, where)
            out[f"puts_per_s_at_{size}_pins"] = round(rate, 1)
            print(f"{size:>7} pins: {rate:8.1f} puts/s ({args.kib} KiB, pinned)", flush=True)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
