"""Audit: the receipt Merkle log, proofs, provenance trails and reports.

    merkle.py      RFC 6962 tree hashing, inclusion and consistency proofs
    errors.py      ProofError, RootMismatchError, AuditFailed, ManifestUnavailable

Everything here works from the chain and content-addressed manifests alone; no
module needs a department's decryption keys.
"""
