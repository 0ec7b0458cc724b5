"""Errors of the audit layer, under :class:`~govshare.errors.IntegrityError`.

    IntegrityError (govshare.errors)
    └── ProofError                  (422) a Merkle proof that cannot be right (sizes, lengths)
        └── RootMismatchError       (422) the proof leads to another root than the anchored one
    InputError (govshare.errors)
    └── ManifestError               (422) a receipt manifest or line that does not parse
    AuditFailed                     (422) an audit found problems (the report says which)
    ManifestUnavailable             (404) no source holds a receipt batch's manifest

Tests and clients match on ``code``; the wording may change.
"""

from __future__ import annotations

from typing import Any

from govshare.errors import GovShareError, InputError, IntegrityError


class ProofError(IntegrityError):
    """A proof that is malformed for the tree it claims (wrong length, index
    beyond the size, a hash that is not 32 bytes)."""

    code = "audit.proof_invalid"
    status = 422
    remedy = "Get the proof again from the chain and the manifest; a bad one proves nothing."


class RootMismatchError(ProofError):
    """The root computed from a proof (or from a manifest's leaves) is not the
    expected one: ``expected`` is the trusted root (e.g. anchored on chain),
    ``calculated`` what the evidence hashes to."""

    code = "audit.root_mismatch"
    remedy = "Treat the evidence as altered: report it to the supervisor with the report."

    def __init__(
        self, expected: bytes, calculated: bytes, message: str | None = None, **details: Any
    ) -> None:
        super().__init__(
            message
            or (
                f"The evidence hashes to root 0x{calculated.hex()}, not to the expected "
                f"root 0x{expected.hex()}: it was altered, or belongs to another tree."
            ),
            expected=expected,
            calculated=calculated,
            **details,
        )
        self.expected = expected
        self.calculated = calculated


class AuditFailed(GovShareError):
    """An audit command found problems; ``details['problems']`` lists them."""

    code = "audit.failed"
    status = 422
    remedy = "Read the problems listed; each names the record, grant or receipt at fault."


class ManifestUnavailable(GovShareError):
    """No configured source holds a receipt manifest (by its CID)."""

    code = "audit.manifest_unavailable"
    status = 404
    remedy = (
        "Name a source that holds it with --manifests: a Kubo node of the consortium's "
        "swarm, or the owner's broker URL with its auditor token in GOVSHARE_AUDIT_TOKEN."
    )


class ManifestError(InputError):
    """A manifest or a receipt line that does not parse (or is not canonical)."""

    code = "audit.manifest_malformed"
    status = 422
    remedy = "Treat the manifest as damaged or forged; fetch it from another member's store."
