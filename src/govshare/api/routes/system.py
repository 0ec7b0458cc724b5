"""Liveness and readiness (public), metrics (an administrator or the scraper's
token): for the orchestrator and the operator."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from govshare.api.auth import metrics_reader, public
from govshare.api.context import ApiDeps, Probe
from govshare.api.deps import DepsDep, SettingsDep
from govshare.api.errors import problem_responses
from govshare.api.metrics import HttpMetrics
from govshare.api.schemas import Check, Health, Readiness
from govshare.broker import membership
from govshare.errors import GovShareError

router = APIRouter(tags=["system"])


@router.get(
    "/healthz",
    response_model=Health,
    responses=problem_responses(500),
    dependencies=[Depends(public)],
)
def healthz() -> Health:
    """Liveness: the process answers. Says nothing about the chain or the store."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "A dependency is not answering"},
        **problem_responses(500),
    },
    dependencies=[Depends(public)],
)
def readyz(deps: DepsDep, settings: SettingsDep) -> JSONResponse:
    """Readiness: every registered probe (database, chain, store, ...) answers
    within its time limit. 503, with each check's outcome, when one does not."""
    checks = run_probes(deps.all_probes(), settings.probe_timeout)
    ready = all(c.ok for c in checks.values())
    body = Readiness(
        status="ready" if ready else "unready",
        checks=checks,
        membership=_membership(deps, checks),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        },
        **problem_responses(401, 403, 500),
    },
    dependencies=[Depends(metrics_reader)],
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: request counts and latency by route template and
    status, and outbox operations by state. For an administrator's token, or
    the broker's metrics token (``GOVSHARE_METRICS_TOKEN``) that a scraper sends
    as ``Authorization: Bearer ...``: the counts say how much the department
    exchanges, which is not for anyone to read."""
    registry = request.app.state.govshare_metrics
    assert isinstance(registry, HttpMetrics)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


def _membership(deps: ApiDeps, checks: dict[str, Check]) -> str | None:
    """The department's registry status (see :class:`Readiness`); never raises."""
    svc = deps.services
    if svc is None:
        return None
    if not checks.get("chain", Check(ok=True, seconds=0)).ok:
        return "unknown"  # the chain probe failed: no second wait for it
    try:
        return membership.status(svc).value
    except GovShareError:
        return "unknown"


def run_probes(probes: dict[str, Probe], timeout: float) -> dict[str, Check]:
    """Run the probes in parallel; a probe that raises or overruns ``timeout`` fails."""
    results: dict[str, Check] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, len(probes)), thread_name_prefix="probe")
    try:
        started = time.perf_counter()
        futures = {name: pool.submit(_timed, probe) for name, probe in probes.items()}
        for name, fut in futures.items():
            remaining = max(0.0, timeout - (time.perf_counter() - started))
            try:
                results[name] = fut.result(timeout=remaining)
            except FutureTimeout:
                results[name] = Check(
                    ok=False,
                    seconds=round(timeout, 3),
                    code="probe.timeout",
                    detail=f"No answer within {timeout:g} s.",
                )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait for a hung probe
    return results


def _timed(probe: Probe) -> Check:
    start = time.perf_counter()
    try:
        probe()
    except GovShareError as exc:
        return Check(ok=False, seconds=_since(start), code=exc.code, detail=exc.message)
    except Exception as exc:  # noqa: BLE001 — any probe failure is a failed check, not a 500
        # A foreign exception's message may quote internals: say only its kind.
        return Check(
            ok=False,
            seconds=_since(start),
            code="probe.failed",
            detail=f"The probe failed ({type(exc).__name__}).",
        )
    return Check(ok=True, seconds=_since(start))


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 4)
