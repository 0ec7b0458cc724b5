"""``govshare blob`` through the real console script, as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts processes (see tests/conftest.py)


GOVSHARE = str(Path(sys.executable).with_name("govshare"))
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def run(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    return subprocess.run(
        [GOVSHARE, "blob", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_add_get_stat_round_trip(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello world\n")
    assert ok(run(home, "add", str(src))).strip() == HELLO_V0
    v1 = json.loads(ok(run(home, "add", str(src), "--cid-version", "1", "--json")))
    assert v1["cid"] == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert v1["size"] == 12
    out = tmp_path / "back.txt"
    assert "12 bytes" in ok(run(home, "get", HELLO_V0, "-o", str(out)))
    assert out.read_bytes() == b"hello world\n"
    stat = json.loads(ok(run(home, "stat", HELLO_V0, "--json")))
    assert stat == {
        "cid": HELLO_V0,
        "size": 12,
        "block_size": 20,
        "codec": "dag-pb",
        "pinned": True,
    }
    assert (home / "blobs" / "blocks").is_dir()


def test_big_file_and_car_round_trip(home: Path, tmp_path: Path) -> None:
    data = os.urandom(3 * 262144 + 99)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    cid = ok(run(home, "add", str(src))).strip()
    car = tmp_path / "big.car"
    assert "5 blocks" in ok(run(home, "export", cid, "-o", str(car)))
    other = tmp_path / "other-home"
    imported = json.loads(ok(run(other, "import", str(car), "--json")))
    assert imported == {"roots": [cid], "blocks": 5}
    out = tmp_path / "big.out"
    ok(run(other, "get", cid, "-o", str(out)))
    assert out.read_bytes() == data


def test_unpin_and_gc(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(300_000))
    cid = ok(run(home, "add", str(src))).strip()
    assert json.loads(ok(run(home, "gc", "--json")))["removed"] == []
    ok(run(home, "unpin", cid))
    report = json.loads(ok(run(home, "gc", "--json")))
    assert len(report["removed"]) == 3 and report["freed_bytes"] > 300_000
    assert "not in the local store" in refused(run(home, "stat", cid))


def test_bad_cid(home: Path, tmp_path: Path) -> None:
    line = refused(run(home, "get", "not-a-cid", "-o", str(tmp_path / "x")))
    assert "not a valid CID" in line
    assert not (tmp_path / "x").exists()
    bad = json.loads(run(home, "stat", "Qm123", "--json").stdout)
    assert bad["error"]["code"] == "storage.invalid_cid"


def test_missing_file(home: Path, tmp_path: Path) -> None:
    assert "no such file" in refused(run(home, "add", str(tmp_path / "nope.txt")))
    assert "no such file" in refused(run(home, "import", str(tmp_path / "nope.car")))


def test_unknown_cid(home: Path, tmp_path: Path) -> None:
    line = refused(run(home, "get", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "-o", "x"))
    assert "not in the local store" in line


def test_corrupted_block_gives_no_output_file(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(600_000))
    cid = ok(run(home, "add", str(src))).strip()
    blocks = sorted((home / "blobs" / "blocks").rglob("b*"), key=lambda p: -p.stat().st_size)
    victim = blocks[1]  # a leaf in the middle of the file
    raw = bytearray(victim.read_bytes())
    raw[1000] ^= 0x10
    victim.write_bytes(bytes(raw))
    out = tmp_path / "out.bin"
    line = refused(run(home, "get", cid, "-o", str(out)))
    assert "does not match its hash" in line
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.bin")] == []
    result = run(home, "get", cid, "-o", str(out), "--json")
    assert json.loads(result.stdout)["error"]["code"] == "storage.block_corrupted"


def test_not_a_car(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.car"
    junk.write_bytes(b"this is not a car file")
    assert "CAR" in refused(run(home, "import", str(junk)))


def test_kubo_down_and_bad_store_url(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    line = refused(run(home, "add", str(src), "--store", "kubo:http://127.0.0.1:9"))
    assert "cannot reach Kubo" in line
    assert "unknown blob store" in refused(run(home, "add", str(src), "--store", "s3:bucket"))


def test_output_directory_missing(home: Path, tmp_path: Path) -> None:
    line = refused(run(home, "get", HELLO_V0, "-o", str(tmp_path / "no" / "such" / "dir")))
    assert "does not exist" in line


def test_help_lists_the_commands(home: Path) -> None:
    out = ok(run(home, "--help"))
    for name in ("add", "get", "export", "import", "gc", "stat"):
        assert name in out
