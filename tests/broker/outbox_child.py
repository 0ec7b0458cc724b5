"""A broker process for the outbox crash tests, run as a script.

    python outbox_child.py DB_PATH WORKDIR submit [STEP POINT]
    python outbox_child.py DB_PATH WORKDIR resume

``submit`` submits one "demo" operation (three steps a, b, c) and dies with
``os._exit`` at POINT of STEP: ``between`` (before the engine records the
step's intent), ``before`` (in the handler, before its effect) or ``after``
(effect done, result not yet recorded). ``resume`` is the restarted broker:
recover + resume_pending.

Each step's effect is a line appended to WORKDIR/effects; the handlers are
idempotent the way the real ones must be: they look for their effect first
(as "anchor" looks the record up on chain before sending). Every call is also
logged to WORKDIR/calls, effect or not, so tests can see re-runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from govshare.broker.db import Database, sqlite_url
from govshare.broker.outbox import Outbox, RetryPolicy, StepContext, fingerprint

STEPS = ("a", "b", "c")
PAYLOAD = {"doc": "tax-clearance", "n": 3}
KEY = "publish-1"
PRINCIPAL = "user:1"
CRASH_EXIT = 70


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def build(db: Database, work: Path, crash: tuple[str, str] | None = None) -> Outbox:
    outbox = Outbox(db, retry=RetryPolicy(max_attempts=3, base_delay=0.0))
    effects = work / "effects"
    calls = work / "calls"

    def handler(name: str) -> Any:
        def run(ctx: StepContext) -> dict[str, Any]:
            _append(calls, json.dumps({"step": name, "resumed": ctx.resumed, "at": ctx.attempt}))
            if crash == (name, "before"):
                os._exit(CRASH_EXIT)
            effect = f"{name}:{ctx.operation_id}"
            done = effects.exists() and effect in effects.read_text().splitlines()
            if not done:  # the idempotency check: has my effect already happened?
                _append(effects, effect)
            if crash == (name, "after"):
                os._exit(CRASH_EXIT)
            return {name: True, "after": sorted(ctx.results)}

        return run

    outbox.register("demo", [(n, handler(n)) for n in STEPS])

    if crash is not None and crash[1] == "between":
        target = STEPS.index(crash[0])
        original = outbox._record_intent

        def crash_before_intent(op_id: str, index: int, *args: Any) -> Any:
            if index == target:
                os._exit(CRASH_EXIT)
            return original(op_id, index, *args)

        outbox._record_intent = crash_before_intent  # type: ignore[method-assign]
    return outbox


def main(argv: list[str]) -> int:
    db_path, work, mode = Path(argv[0]), Path(argv[1]), argv[2]
    db = Database.open(sqlite_url(db_path))
    if mode == "submit":
        crash = (argv[3], argv[4]) if len(argv) > 4 else None
        outbox = build(db, work, crash)
        sub = outbox.submit("demo", KEY, PRINCIPAL, fingerprint(PAYLOAD), PAYLOAD)
        print(json.dumps(sub.operation.to_dict()))
        return 0
    outbox = build(db, work)
    outbox.recover()
    for view in outbox.resume_pending():
        print(json.dumps(view.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
