"""The command line against hostile or broken input, through the real console
script: bytes that are not UTF-8, usage errors with ``--json``, output paths that
are devices, fifos or existing files, a write that fails (the file size limit),
durations and dates beyond their bounds, a replaced login token, password
messages, a mistyped department, and Ctrl-C in the middle of a publish.

None of these needs a chain; where a broker would answer, a socket the test holds
stands in (the Ctrl-C test) or the command is refused before any call."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from govshare.cli.main import undecodable
from govshare.crypto.errors import PasswordUnavailable
from govshare.errors import WrongPassword
from govshare.profile import load_profile
from govshare.settings import Passwords

from .conftest import GOVSHARE, Cli

pytestmark = pytest.mark.integration  # starts processes

FAST = ["--scrypt-n", "1024"]
RECORD = "0x" + "ab" * 32
BLOB = b"plaintext " * 300_000  # 3 MB: over the write limit below
DEAD = "http://127.0.0.1:9"  # nothing listens (discard port): a call would fail


def run_bytes(
    cli: Cli, *args: str | bytes, preexec: object = None
) -> subprocess.CompletedProcess[bytes]:
    """The console script with an argv of raw bytes, as a shell passes it."""
    argv = [os.fsencode(GOVSHARE), *(a if isinstance(a, bytes) else a.encode() for a in args)]
    return subprocess.run(
        argv,
        capture_output=True,
        env=cli.env,
        timeout=120,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )


# -- 2. bytes that are not UTF-8 ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        # a multipart field: httpx encoded it and raised UnicodeEncodeError (a traceback)
        [b"record", b"publish", b"FILE", b"--category", b"cert\xff", b"--dept", b"TAX"],
        [b"request", b"create", b"--owner", b"TAX", b"--record", RECORD.encode(),
         b"--purpose", b"licence \xe9t\xe9", b"--dept", b"MARKET"],
        [b"record", b"fetch", b"--owner", b"TAX", b"--category", b"c", b"--subject",
         b"\xc3\x28", b"-o", b"out", b"--dept", b"MARKET"],
        [b"init", b"T\xffX", b"--name", b"Tax"],
        [b"catalog", b"declare", b"--description=\xfe", b"cert", b"--as", b"TAX"],
    ],
)  # fmt: skip
def test_an_argument_that_is_not_utf8_is_one_usage_error(
    cli: Cli, tmp_path: Path, argv: list[bytes]
) -> None:
    (tmp_path / "FILE").write_bytes(b"x")
    argv = [a.replace(b"FILE", os.fsencode(tmp_path / "FILE")) for a in argv]
    extra = (
        [b"--token", b"t", b"--broker", DEAD.encode()] if argv[0] in (b"record", b"request") else []
    )
    r = run_bytes(cli, *argv, *extra)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "is not valid UTF-8" in lines[0], err

    j = run_bytes(cli, *argv, *extra, b"--json")
    assert j.returncode == 2
    assert json.loads(j.stdout)["error"]["code"] == "cli.usage"


def test_the_undecodable_argument_is_named() -> None:
    bad = os.fsdecode(b"a\xff")
    assert undecodable(["x", "--purpose", bad]) is not None
    assert "--purpose" in (undecodable(["x", "--purpose", bad]) or "")
    assert "--purpose" in (undecodable([f"--purpose={bad}"]) or "")
    assert "argument 2" in (undecodable(["x", bad]) or "")
    assert undecodable(["x", "--purpose", "é ü 中文"]) is None


# -- 6. usage errors with --json ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "record", "fetch", "--bogus"],  # the parser stops before --json's callback
        ["record", "fetch", RECORD, "--json"],  # a missing required option
        ["grant", "list", "--incoming", "--json"],  # a UsageError the command raises
        ["grant", "approve", "x", "--expires", "1d", "--max-uses", "1", "--json"],  # bad type
        ["no-such-command", "--json"],
    ],
)
def test_usage_errors_take_the_json_error_shape_with_json(cli: Cli, argv: list[str]) -> None:
    r = cli(*argv)
    assert r.exit_code == 2, r.output
    err = r.json()["error"]
    assert err["code"] == "cli.usage" and err["message"], err
    assert "Traceback" not in r.output

    plain = cli(*[a for a in argv if a != "--json"])
    assert plain.exit_code == 2 and plain.stdout == ""
    assert "Error:" in plain.stderr


# -- 4 and 5. output files ---------------------------------------------------------------


@pytest.fixture
def blob(cli: Cli, tmp_path: Path) -> str:
    src = tmp_path / "secret.txt"
    src.write_bytes(BLOB)
    return cli.ok("blob", "add", str(src)).stdout.strip()


def _refused(r: object, code: str = "cli.output_refused") -> dict:
    from cliharness import Result

    assert isinstance(r, Result)
    assert r.exit_code == 1, r.output
    err = r.json()["error"]
    assert err["code"] == code, err
    return err


def test_an_output_that_is_not_a_regular_file_is_refused(
    cli: Cli, blob: str, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    link = tmp_path / "null-link"
    link.symlink_to("/dev/null")
    for target in ["/dev/full", "/dev/null", str(fifo), str(folder), str(link)]:
        for cmd in (["blob", "get", blob], ["blob", "export", blob]):
            err = _refused(cli(*cmd, "-o", target, "--force", "--json"))
            assert "not a regular file" in err["message"], err
        # before any network call (a fetch never reaches the dead broker)
        fetch = cli(
            "record", "fetch", RECORD, "-o", target, "--force", "--dept", "MARKET",
            "--token", "t", "--broker", DEAD, "--json",
        )  # fmt: skip
        assert "not a regular file" in _refused(fetch)["message"]
        for fmt in ("json", "html"):
            report = cli("audit", "report", "--since", "1d", "--format", fmt, "-o", target,
                         "--force", "--json")  # fmt: skip
            assert "not a regular file" in _refused(report)["message"]
    assert Path("/dev/null").is_char_device() and Path("/dev/full").is_char_device()
    assert fifo.is_fifo() and folder.is_dir() and link.is_symlink()


def test_an_existing_file_is_replaced_only_with_force_for_every_output(
    cli: Cli, blob: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"keep me")
    for cmd in (
        ["blob", "get", blob],
        ["blob", "export", blob],
        ["audit", "report", "--since", "1d"],  # it overwrote silently
        ["audit", "trail", RECORD, "--format", "json"],
        ["record", "fetch", RECORD, "--dept", "MARKET", "--token", "t", "--broker", DEAD],
    ):
        assert "already exists" in _refused(cli(*cmd, "-o", str(out), "--json"))["message"]
        assert out.read_bytes() == b"keep me"
    cli.ok("blob", "get", blob, "-o", str(out), "--force")
    assert out.read_bytes() == BLOB

    # a symlink to a regular file: its target is written, the link stays a link
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    cli.ok("blob", "get", blob, "-o", str(link), "--force")
    assert link.is_symlink() and real.read_bytes() == BLOB
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_write_that_fails_is_one_sentence_and_leaves_no_file(
    cli: Cli, blob: str, tmp_path: Path
) -> None:
    """The child may write at most 1 MiB per file (RLIMIT_FSIZE; the store's own
    files stay below it): the 3 MB output fails with EFBIG (Python ignores
    SIGXFSZ), as a full disk fails with ENOSPC: the same path through the code,
    without root or a real full disk."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    out = tmp_path / "out.bin"
    for cmd in ("get", "export"):
        r = run_bytes(cli, "blob", cmd, blob, "-o", str(out), preexec=small_files)
        err = r.stderr.decode()
        assert r.returncode == 1, err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert lines == [
            f"Error: Could not write {out}: the file is larger than this system or its "
            "limits allow; nothing was written under that name."
        ], err
        j = run_bytes(cli, "blob", cmd, blob, "-o", str(out), "--json", preexec=small_files)
        assert json.loads(j.stdout)["error"]["code"] == "cli.write_failed"
        assert not out.exists()
        assert list(tmp_path.glob(".out.bin.*")) == []  # no partial temporary file


# -- 3. durations and dates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["grant", "approve", "1", "--expires", "30000000000w", "--max-uses", "1",
          "--dept", "TAX"], "too long"),
        (["grant", "approve", "1", "--expires", "9" * 400 + "d", "--max-uses", "1",
          "--dept", "TAX"], "too long"),
        (["request", "create", "--owner", "TAX", "--record", RECORD, "--purpose", "p",
          "--deadline", "99999999999w", "--dept", "MARKET", "--token", "t", "--broker", DEAD],
         "too long"),
        (["catalog", "declare", "cert", "--description", "d", "--sharing", "conditional",
          "--default-expires", "30000000000w", "--default-max-uses", "1", "--as", "TAX"],
         "too long"),
        (["audit", "report", "--since", "2026-01-01", "--until", "9999-12-31"], None),
        (["audit", "report", "--since", "99999999999999999999999"], "Unix seconds"),
        (["audit", "report", "--since", "30000000000w"], "too long"),
        (["audit", "report", "--since", "0001-01-01"], "between 1970 and 9999"),
    ],
)  # fmt: skip
def test_durations_and_dates_beyond_their_bounds_are_one_sentence(
    cli: Cli, argv: list[str], says: str | None
) -> None:
    r = cli(*argv)
    assert "Traceback" not in r.output
    assert r.exit_code != 0
    if says is None:  # the end of year 9999 is a date: refused later, for the missing deployment
        assert "deployment" in r.stderr, r.output
    else:
        assert says in r.stderr, r.output
        lines = [line for line in r.stderr.splitlines() if line]
        assert len(lines) <= 3, r.output  # click's usage line and hint, one sentence


# -- 7, 8 and 9. login, passwords, department codes --------------------------------------


@pytest.fixture
def tax(cli: Cli) -> Cli:
    cli.env["GOVSHARE_PASSWORD"] = "pw"
    cli.ok("init", "TAX", "--name", "Tax", *FAST)
    return cli


def test_login_keeps_the_token_it_replaces(tax: Cli) -> None:
    saved = tax.home / "depts" / "TAX" / "api.token"
    saved.write_text("token-from-dev-up\n")
    saved.chmod(0o600)
    r = tax.ok("login", "--dept", "TAX", "--token", "new-token", "--no-check")
    previous = saved.with_name("api.token.previous")
    assert f"It replaces the token saved before, kept in {previous}" in r.stdout
    assert f"mv {previous} {saved}" in r.stdout
    assert saved.read_text().strip() == "new-token"
    assert previous.read_text().strip() == "token-from-dev-up"
    assert previous.stat().st_mode & 0o777 == 0o600

    again = tax.ok("login", "--dept", "TAX", "--token", "new-token", "--no-check", "--json")
    assert again.json()["previous_token_file"] is None  # the same token: nothing replaced
    assert previous.read_text().strip() == "token-from-dev-up"


def test_password_messages_name_the_variable_to_set(tax: Cli) -> None:
    prof = load_profile(tax.home, "TAX")
    with pytest.raises(PasswordUnavailable) as no_admin:
        prof.unlock_admin(passwords=Passwords())
    text = str(no_admin.value)
    assert "GOVSHARE_ADMIN_PASSWORD or GOVSHARE_ADMIN_PASSWORD_FILE" in text
    assert "GOVSHARE_PASSWORD serves when neither is set" in text
    assert "pass one" not in text and "pass --" not in text  # unlock_admin has no option
    with pytest.raises(
        PasswordUnavailable, match="set GOVSHARE_PASSWORD or GOVSHARE_PASSWORD_FILE"
    ):
        prof.unlock_broker(passwords=Passwords())
    with pytest.raises(
        WrongPassword, match=r"read from GOVSHARE_ADMIN_PASSWORD \(or GOVSHARE_ADMIN"
    ):
        prof.unlock_admin(passwords=Passwords(admin="not it"))
    with pytest.raises(
        WrongPassword, match=r"read from GOVSHARE_PASSWORD \(or GOVSHARE_PASSWORD_FILE"
    ):
        prof.unlock_broker(passwords=Passwords(broker="not it"))

    del tax.env["GOVSHARE_PASSWORD"]
    r = tax.fails("init", "COURT", "--name", "Court", *FAST)
    assert "pass --password-file FILE, set GOVSHARE_PASSWORD or GOVSHARE_PASSWORD_FILE" in r.stderr


def test_a_mistyped_department_suggests_the_near_code(tax: Cli) -> None:
    tax.ok("init", "COURT", "--name", "Court", *FAST)
    r = tax.fails("record", "list", "--dept", "TAXX")
    assert "Did you mean TAX?" in r.stderr and "govshare init" not in r.stderr
    assert "Did you mean COURT?" in tax.fails("user", "list", "--dept", "CORT").stderr
    far = tax.fails("record", "list", "--dept", "HEALTH", "--json").json()["error"]
    assert "govshare init HEALTH" in far["message"] and far["details"]["suggestions"] == []


# -- 10. Ctrl-C during a publish ---------------------------------------------------------


class HoldingBroker:
    """A socket standing in for a broker: it answers the first ``len(answers)``
    requests with those raw HTTP answers, then takes the next request and never
    answers it. The test knows when that request arrived: the command is then in
    flight, at a point of the test's choosing."""

    def __init__(self, answers: list[bytes] | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.answers = list(answers or [])
        self.held = threading.Event()
        self.heads: list[str] = []
        self._conn: socket.socket | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self._conn = conn
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            self.heads.append(head.decode("latin-1"))
            if not self.answers:
                self.held.set()  # this request is on the wire: hold it
                return
            length = next(
                (int(h.split(":", 1)[1]) for h in self.heads[-1].split("\r\n")
                 if h.lower().startswith("content-length:")),
                0,
            )  # fmt: skip
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            conn.sendall(self.answers.pop(0))

    def header(self, name: str, request: int = 0) -> str:
        lines = self.heads[request].split("\r\n")
        return next(h.split(":", 1)[1].strip() for h in lines if h.lower().startswith(name + ":"))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.sock.close()


def _json_answer(status: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


def _publish_and_interrupt(cli: Cli, doc: Path, broker: HoldingBroker) -> str:
    """Run ``record publish`` against ``broker``, SIGINT it once the broker holds a
    request; its stderr (exit status 130, no traceback, no bare "Aborted!")."""
    doc.write_bytes(b"%PDF certificate")
    proc = subprocess.Popen(
        [str(GOVSHARE), "record", "publish", str(doc), "--category", "tax-clearance",
         "--dept", "TAX", "--token", "t", "--broker", broker.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env, text=True,
    )  # fmt: skip
    try:
        assert broker.held.wait(60), "the publish never reached the broker"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err
    return err


@pytest.fixture
def holding() -> Iterator[HoldingBroker]:
    b = HoldingBroker()
    yield b
    b.close()


def test_ctrl_c_during_a_publish_prints_the_resume_command(
    cli: Cli, tmp_path: Path, holding: HoldingBroker
) -> None:
    doc = tmp_path / "cert one.pdf"
    err = _publish_and_interrupt(cli, doc, holding)  # held: the upload in flight
    key = holding.header("idempotency-key")
    assert key.startswith("cli-")
    assert "the record may exist" in err
    assert (
        f"  govshare record publish '{doc}' --category tax-clearance --dept TAX "
        f"--idempotency-key {key} --broker {holding.url}"
    ) in err, err


def test_ctrl_c_once_the_broker_accepted_says_the_record_exists(cli: Cli, tmp_path: Path) -> None:
    accepted = {"state": "anchoring", "record_id": RECORD, "operation_id": "op-1"}
    broker = HoldingBroker([_json_answer("202 Accepted", accepted)])  # then holds the poll
    try:
        err = _publish_and_interrupt(cli, tmp_path / "cert.pdf", broker)
    finally:
        broker.close()
    assert broker.heads[1].startswith("GET /v1/operations/op-1 ")
    assert f"accepted the file as record {RECORD}: the record exists" in err, err
    assert f"--idempotency-key {broker.header('idempotency-key')}" in err


def test_human_output_has_one_way_to_the_terminal() -> None:
    """Every command prints human text through ``main.echo`` (printable), asks
    through ``_chain.confirm`` (printable) and prints tables as ``SafeTable``: a
    new ``click.echo`` in a command would bypass the rule."""
    import govshare.cli

    folder = Path(govshare.cli.__file__).parent
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        if path.name != "main.py":
            assert "click.echo(" not in text, f"{path.name}: use main.echo"
        if path.name != "_chain.py":
            assert "click.confirm(" not in text or "printable(" in text, path.name
        assert " Table(" not in text or path.name == "_render.py", f"{path.name}: use SafeTable"
