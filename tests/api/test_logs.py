"""Secrets never reach a log line."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from govshare.api.logs import RedactingFilter, install_redaction, log_config, redact

TOKEN = "gs_" + "Q" * 43
PRIVATE_HEX = "0x" + "4c" * 32


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        ("headers={'authorization': 'Bearer abc.def.ghi'}", "abc.def.ghi"),
        ("authorization=sekrit-value;", "sekrit-value"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        (f"calling with token {TOKEN} now", TOKEN),
        ("bearer xyz123", "xyz123"),
        (f"private_key={PRIVATE_HEX}", PRIVATE_HEX),
        (f'{{"privateKey": "{PRIVATE_HEX}"}}', PRIVATE_HEX),
        ("password: hunter2, user=bob", "hunter2"),
        ('{"access_token": "t0k3n", "n": 1}', "t0k3n"),
        ("keystore passphrase=correct-horse", "correct-horse"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA\n-----END EC PRIVATE KEY-----", "MHcCAQEEIA"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "[REDACTED" in out


def test_redact_keeps_what_operators_need() -> None:
    tx = "0x" + "ab" * 32
    line = f"anchored record tx={tx} token_id=5 user=alice status=200"
    assert redact(line) == line


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("govshare.test.redaction")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    install_redaction(logger)
    return logger, stream


def test_filter_redacts_args_and_tracebacks() -> None:
    logger, stream = _capture()
    logger.info("request headers %s", {"Authorization": f"Bearer {TOKEN}"})
    try:
        raise ValueError(f"bad key private_key={PRIVATE_HEX}")
    except ValueError:
        logger.exception("failed for %s", TOKEN)
    out = stream.getvalue()
    assert TOKEN not in out and PRIVATE_HEX not in out
    assert "Traceback" in out and "ValueError" in out and "[REDACTED]" in out


def test_install_is_idempotent() -> None:
    logger, _ = _capture()
    install_redaction(logger)
    assert sum(isinstance(f, RedactingFilter) for f in logger.handlers[0].filters) == 1


def test_log_config_redacts_every_handler(capsys: pytest.CaptureFixture[str]) -> None:
    saved = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "govshare")}
    state = {n: (lg.handlers[:], lg.level, lg.propagate) for n, lg in saved.items()}
    root = logging.getLogger()
    root_state = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(log_config("INFO"))
        logging.getLogger("govshare.api").warning("token %s", TOKEN)
        logging.getLogger("uvicorn.error").warning("Authorization: Bearer %s", TOKEN)
        err = capsys.readouterr().err
        assert TOKEN not in err and err.count("[REDACTED]") == 2
    finally:
        for n, (handlers, level, propagate) in state.items():
            lg = logging.getLogger(n)
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
        root.handlers[:], _ = root_state
        root.setLevel(root_state[1])
