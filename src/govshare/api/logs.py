"""Keep secrets out of log lines.

:class:`RedactingFilter` rewrites every record that passes a handler: bearer
tokens, ``Authorization`` values, govshare tokens (``gs_...``), PEM private keys
and ``name=value`` pairs whose name says secret (``private_key``, ``password``,
``token``, ``secret``, ``passphrase``, ``mnemonic``, ``dek``, ...) become
``[REDACTED]``, in the message, its arguments and any formatted traceback.

Bare 32-byte hex strings are *not* redacted: transaction hashes, record ids and
addresses look the same and an operator needs them. Code must never log a key;
this filter is the safety net, not the policy.

Attach it to handlers (a filter on a logger does not see records propagated from
its children): :func:`log_config` for uvicorn, :func:`install_redaction` for
handlers that already exist.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

REDACTED = "[REDACTED]"

_SENSITIVE_NAME = (
    r"(?:[A-Za-z0-9]+[_-])*"
    r"(?:private[_-]?key|secret|password|passwd|passphrase|api[_-]?key|token|"
    r"mnemonic|dek|seed|credentials?)"
)

_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        "[REDACTED PRIVATE KEY]",
    ),
    # Authorization: Bearer xyz / 'authorization': 'Basic xyz' / authorization=xyz
    (
        re.compile(
            r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?)(?:(bearer|basic|token)\s+)?[^\s"',;}]+"""
        ),
        lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"\bgs_[A-Za-z0-9_-]{8,}"), "gs_" + REDACTED),
    # private_key=0x..., "password": "...", client_secret: abc
    (
        re.compile(rf"""(?i)\b({_SENSITIVE_NAME})(["']?\s*[:=]\s*["']?)[^\s"',;}}]+"""),
        r"\1\2" + REDACTED,
    ),
]


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret replaced by ``[REDACTED]``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets in place (it never drops a record)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        # A filter must never raise: a broken format string or an argument whose
        # __str__ fails (any exception type) keeps the template only.
        except Exception:  # noqa: BLE001 — a log filter must not raise on any record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(*loggers: logging.Logger | str) -> None:
    """Add a :class:`RedactingFilter` to every handler of the given loggers
    (default: the root logger and uvicorn's)."""
    names: tuple[logging.Logger | str, ...] = loggers or ("", "uvicorn", "uvicorn.access")
    for item in names:
        logger = item if isinstance(item, logging.Logger) else logging.getLogger(item)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary (give it to uvicorn as
    ``log_config``) whose handlers all redact."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactingFilter}},
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
            "govshare": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
