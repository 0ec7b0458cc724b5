"""The command line's own errors: raised by ``govshare`` itself, never by a broker
(``docs/errors.md`` lists them under "The CLI's own").

Light on purpose: the root command imports this module to render a usage error,
so ``govshare --help`` stays fast.
"""

from __future__ import annotations

from govshare.errors import GovShareError, InputError

#: Exit status of a usage error (click's): a script tells "you called me wrong"
#: from "govshare refused" (1).
EXIT_USAGE = 2


class UsageInvalid(InputError):
    """The command line itself is wrong: an unknown option, a missing argument,
    a value that is not valid UTF-8 (exit status 2)."""

    code = "cli.usage"
    status = 400
    remedy = "Read `govshare COMMAND --help` and correct the command line; nothing was done."


class OutputRefused(InputError):
    """The output path (``-o``) cannot be written safely: it exists (no ``--force``),
    it is not a regular file (a device, a fifo, a directory) or its folder is missing."""

    code = "cli.output_refused"
    status = 409
    remedy = "Name a new regular file in an existing folder, or pass --force to replace a file."


class WriteFailed(GovShareError):
    """Writing the output file failed (disk full, file too large, no permission);
    nothing was left under its name."""

    code = "cli.write_failed"
    status = 507
    remedy = "Free space or fix the folder's permissions, then run the command again."


class Cancelled(GovShareError):
    """The question before a transaction was not answered yes (or there was no
    terminal to ask it on); nothing was sent."""

    code = "cli.cancelled"
    status = 409
    remedy = "Answer yes, or pass -y to skip the question in a script."


class Interrupted(GovShareError):
    """The command was interrupted (Ctrl-C) part-way; the message says what may
    have happened and how to resume safely (exit status 130, as for SIGINT)."""

    code = "cli.interrupted"
    status = 499
    remedy = "Run the resume command the message prints (same idempotency key)."
    exit_code = 130
