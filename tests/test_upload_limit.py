"""The brokers' upload limit, fast (no process): the refusal names the limit and
the setting that raises it, and ``dev up`` picks the limit it passes its brokers
(``--max-upload``, else GOVSHARE_MAX_UPLOAD, else the home's, else 256MiB). The
same, end to end with real brokers: tests/cli/test_dev_resume.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from govshare.broker.errors import UploadTooLarge
from govshare.cli.devnet import DevNet
from govshare.errors import ConfigError
from govshare.settings import Settings
from govshare.util import format_size, parse_size


@pytest.mark.parametrize(
    ("n", "text"),
    [(256 * 1024**2, "256MiB"), (1024**3, "1GiB"), (64 * 1024, "64KiB"), (1000, "1000 bytes")],
)
def test_format_size_reads_back(n: int, text: str) -> None:
    assert format_size(n) == text
    if not text.endswith("bytes"):
        assert parse_size(text) == n


def test_the_refusal_names_the_limit_and_how_to_raise_it() -> None:
    err = UploadTooLarge.over(256 * 1024**2)
    assert err.code == "input.too_large" and err.status == 413
    msg = str(err)
    assert "upload limit of 256MiB" in msg and "GOVSHARE_MAX_UPLOAD" in msg
    assert "govshare serve --max-upload" in msg and "govshare dev up --max-upload" in msg
    assert "add up to more than this broker's upload limit of 1GiB" in str(
        UploadTooLarge.over(1024**3, total=True)
    )


def _net(home: Path, env: str | None = None) -> DevNet:
    os.environ.pop("GOVSHARE_MAX_UPLOAD", None)
    if env is not None:
        os.environ["GOVSHARE_MAX_UPLOAD"] = env
    try:
        return DevNet(home, Settings())
    finally:
        os.environ.pop("GOVSHARE_MAX_UPLOAD", None)


def test_dev_up_picks_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVSHARE_MAX_UPLOAD", raising=False)
    assert _net(tmp_path)._upload_limit({}, None) == 256 * 1024**2
    assert _net(tmp_path)._upload_limit({}, 2 * 1024**3) == 2 * 1024**3
    assert _net(tmp_path, "1GiB")._upload_limit({}, None) == 1024**3
    kept = {"max_upload": 1024**2}
    assert _net(tmp_path)._upload_limit(kept, None) == 1024**2  # the home's, kept
    assert _net(tmp_path, "1GiB")._upload_limit(kept, None) == 1024**3  # the env wins
    assert _net(tmp_path, "1GiB")._upload_limit(kept, 4096) == 4096  # the option wins


def test_a_new_limit_while_brokers_run_is_refused(tmp_path: Path) -> None:
    net = _net(tmp_path)
    # a broker of this home that runs: our own process stands in for it
    net.broker_pid = lambda code: os.getpid() if code == "TAX" else None  # type: ignore[method-assign]
    state = {"departments": ["TAX"], "max_upload": 64 * 1024}
    assert net._upload_limit(state, None) == 64 * 1024  # unchanged: fine
    with pytest.raises(ConfigError) as err:
        net._upload_limit(state, 1024**2)
    assert "run with an upload limit of 64KiB" in str(err.value)
    assert "`govshare dev down`, then `govshare dev up --max-upload 1MiB`" in str(err.value)
    assert state["max_upload"] == 64 * 1024


def test_sizes_and_durations_keep_their_own_units() -> None:
    # (both parsers live in util: "1d" is a day, "1m" a minute, "1M" a MiB)
    from govshare.util import parse_duration

    assert parse_duration("1d") == 86400 and parse_duration("1m") == 60
    assert parse_size("1M") == 1024**2 and parse_size("1k") == 1024
