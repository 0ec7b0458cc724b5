"""``govshare request watch`` and ``govshare webhook`` from the real command line,
against real ``govshare serve`` processes on this module's own anvil: a request
made at MARKET shows up in TAX's watch (escaped), Ctrl-C ends it with status 0,
a stopped broker ends its open streams, and webhooks are managed by an
administrator only, refusing what is not http(s)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from govshare.broker.users import Users
from govshare.chain.devnode import AnvilProcess
from govshare.cli._client import ADMIN_TOKEN_FILE, save_token
from govshare.cli.watch import describe, parse_sse
from integration.world import (
    CATEGORY,
    GOVSHARE,
    ServeProcess,
    World,
    add_clerks,
    build_world,
    cli_env,
    run_cli,
    spawn_serve,
    wait_for,
    wait_serving,
)

pytestmark = pytest.mark.integration

FAST = {"GOVSHARE_EVENTS_POLL_INTERVAL": "0.05"}
OPTIONS = ("--sync-interval", "0.1", "--worker-interval", "0.1")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
        add_clerks(w, ("TAX", "MARKET"))
        db = w.database("TAX")
        try:
            _, issued = Users(db).add("tax-cli-admin", "admin", "TAX")
        finally:
            db.close()
        save_token(w.home, "TAX", issued.token, ADMIN_TOKEN_FILE)
        yield w
        w.close()


@pytest.fixture(scope="module")
def serving(world: World) -> Iterator[dict[str, ServeProcess]]:
    procs = {c: spawn_serve(world, c, env=FAST, options=OPTIONS) for c in ("TAX", "MARKET")}
    try:
        wait_serving(list(procs.values()))
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def record_of(world: World) -> str:
    rid = "0x" + os.urandom(32).hex()
    world.ledger.records.anchor(
        world["TAX"].broker, rid, hashlib.sha256(rid.encode()).digest(), "bafkreiexample", CATEGORY
    )
    return rid


class Lines:
    """A child's stdout, read by a thread (the test waits with ``wait_for``)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.lines: list[str] = []
        assert stream is not None
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def join(self) -> None:
        """After the child ended: its output is read to the end (then it may be closed)."""
        self._thread.join(10)

    def _read(self, out: object) -> None:
        for line in out:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))


def ctrl_c(watch: subprocess.Popen[str], err: Lines) -> None:
    """Ctrl-C: the watch must exit with status 0. If it has not within a minute,
    its threads' stacks (faulthandler, on SIGABRT) go into the failure."""
    watch.send_signal(signal.SIGINT)
    try:
        code = watch.wait(60)
    except subprocess.TimeoutExpired:
        watch.send_signal(signal.SIGABRT)
        watch.wait(30)
        err.join()  # the dump is read off the pipe to its end
        stacks = "\n".join(err.lines[-80:])
        raise AssertionError(f"the watch did not stop on Ctrl-C; its stacks:\n{stacks}") from None
    assert code == 0, "\n".join(err.lines[-40:])


def test_watch_follows_the_stream_and_ctrl_c_exits_cleanly(
    world: World, serving: dict[str, ServeProcess]
) -> None:
    watch = subprocess.Popen(
        [str(GOVSHARE), "request", "watch", "--dept", "TAX"],
        env=cli_env(world, PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    readers: list[Lines] = []
    try:
        out, err = Lines(watch.stdout), Lines(watch.stderr)
        readers = [out, err]
        wait_for(lambda: any("Following TAX" in x for x in err.lines), "the watch is connected")
        rid = record_of(world)
        made = run_cli(
            world,
            "request",
            "create",
            "--owner",
            "TAX",
            "--record",
            rid,
            "--purpose",
            "licence \u202egnp.exe",
            "--dept",
            "MARKET",
            "--json",
        )
        assert made.returncode == 0, made.stderr
        request_id = json.loads(made.stdout)["request_id"]
        line = wait_for(
            lambda: next((x for x in out.lines if "request.incoming" in x), None),
            "TAX's watch shows the request",
        )
        assert f"request #{request_id}" in line and "MARKET asks for record" in line
        assert "\u202e" not in line and "\\u202e" in line  # escaped for the terminal
        ctrl_c(watch, err)
        assert not any("Traceback" in x for x in err.lines)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(10)
        for reader in readers:
            reader.join()
        for stream in (watch.stdout, watch.stderr):
            if stream is not None:
                stream.close()

    # the same, afterwards, as JSON lines
    done = run_cli(world, "request", "watch", "--dept", "TAX", "--after", "0", "--no-follow",
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    items = [json.loads(x) for x in done.stdout.splitlines()]
    assert any(i["data"]["request_id"] == request_id for i in items)
    assert all(i["department"] == "TAX" for i in items)
    nothing = run_cli(world, "request", "watch", "--dept", "MARKET", "--after", "0",
                      "--no-follow", "--json")  # fmt: skip
    assert nothing.returncode == 0 and all(
        json.loads(x)["kind"] != "request.incoming" for x in nothing.stdout.splitlines()
    )


def test_webhook_commands_for_administrators(
    world: World, serving: dict[str, ServeProcess], tmp_path: Path
) -> None:
    refused = run_cli(world, "webhook", "add", "ftp://example.org/x", "--dept", "TAX", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "webhook.invalid"
    clerk = run_cli(world, "webhook", "list", "--dept", "MARKET")  # MARKET's saved token: a clerk
    assert clerk.returncode == 1 and "admin" in clerk.stderr

    secret = tmp_path / "secret"
    secret.write_text("a-shared-secret-of-32-characters\n")
    added = run_cli(
        world, "webhook", "add", "https://intake.example/hook", "--dept", "TAX",
        "--secret-file", str(secret), "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    body = json.loads(added.stdout)
    assert "secret" not in body and "a-shared-secret" not in added.stdout
    generated = run_cli(world, "webhook", "add", "http://127.0.0.1:9/hook", "--dept", "TAX")
    assert generated.returncode == 0 and "whsec_" in generated.stdout
    listed = run_cli(world, "webhook", "list", "--dept", "TAX", "--json")
    rows = json.loads(listed.stdout)
    assert [r["url"] for r in rows][-2:] == [
        "https://intake.example/hook",
        "http://127.0.0.1:9/hook",
    ]
    shown_once = next(w for w in generated.stdout.split() if w.startswith("whsec_"))
    assert shown_once not in listed.stdout and rows[-1]["secret_hint"].startswith("whsec_")
    gone = run_cli(world, "webhook", "remove", str(body["webhook"]["id"]), "--dept", "TAX")
    assert gone.returncode == 0, gone.stderr
    again = run_cli(world, "webhook", "remove", str(body["webhook"]["id"]), "--dept", "TAX")
    assert again.returncode == 1 and "no webhook" in again.stderr


def test_a_stopped_broker_ends_its_streams(world: World, serving: dict[str, ServeProcess]) -> None:
    """SIGTERM with a stream open: the broker ends the stream instead of waiting
    for it (uvicorn's graceful shutdown would, then cancel it); the watch
    retries until the broker is back, and carries on from where it was."""
    watch = subprocess.Popen(
        [str(GOVSHARE), "request", "watch", "--dept", "TAX", "--json"],
        env=cli_env(world, PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    readers: list[Lines] = []
    try:
        out, err = Lines(watch.stdout), Lines(watch.stderr)
        readers = [out, err]
        wait_for(lambda: any("Following TAX" in x for x in err.lines), "the watch is connected")

        def ask() -> int:
            args = ["--owner", "TAX", "--record", record_of(world), "--purpose", "p"]
            made = run_cli(world, "request", "create", *args, "--dept", "MARKET", "--json")
            assert made.returncode == 0, made.stderr
            return int(json.loads(made.stdout)["request_id"])

        def shown(request_id: int) -> bool:
            return any(json.loads(x)["data"]["request_id"] == request_id for x in out.lines)

        first = ask()
        wait_for(lambda: shown(first), "the watch is connected and shows the request")
        tax = serving["TAX"]
        tax.proc.send_signal(signal.SIGTERM)
        assert tax.proc.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
        assert "graceful shutdown exceeded" not in tax.log.read_text()
        wait_for(lambda: any("Reconnecting" in x for x in err.lines), "the watch retries")
        second = ask()  # while TAX's broker is down
        serving["TAX"] = spawn_serve(world, "TAX", env=FAST, options=OPTIONS)
        wait_serving([serving["TAX"]])
        wait_for(lambda: shown(second), "the watch resumes with what happened meanwhile")
        assert [json.loads(x)["data"]["request_id"] for x in out.lines].count(first) == 1
        ctrl_c(watch, err)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(10)
        for reader in readers:
            reader.join()
        for stream in (watch.stdout, watch.stderr):
            if stream is not None:
                stream.close()


def test_sse_parsing_and_lines_are_total() -> None:
    stream = [
        ": keep-alive",
        "retry: 3000",
        "id: 7",
        "event: request.denied",
        'data: {"id": 7}',
        "",
        "nonsense without colon",
        "data: x" * 20_000,
        "",
    ]
    assert list(parse_sse(iter(stream))) == [("7", "request.denied", '{"id": 7}')]
    line = describe({"id": 1, "kind": "request.denied", "data": {"reason": "\x1b[31mno\x07"}})
    assert "\x1b" not in line and "\x07" not in line
    assert describe({"id": 2, "kind": "future.kind", "data": []}).startswith("#2")
