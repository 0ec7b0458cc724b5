"""Reading a record's content: one's own, or another department's under a grant.

    out = fetch(svc, record_id, Path("out.pdf"))    # own record, or granted one
    out.sha256, out.source                          # "own" | "exchange"

Nothing reaches ``dst`` unless every check passed (``decrypt_to_file`` writes
a temporary file and renames it only at the end):

* **own** record: the owner capsule opens with this department's HPKE key; the
  blob store verifies every block against its CID; the plaintext must hash to
  the recorded SHA-256 (the one anchored).
* **granted** record (the requester's side of the exchange): the record is read
  from the chain (owner, SHA-256, CID); this broker signs an
  :class:`~govshare.broker.exchange.ExchangeRequest` with its broker key and
  POSTs it to the owner's broker endpoint from the registry. The answer must
  carry a receipt for *this* request, for the anchored CID and for the capsule
  received, signed by the owner's registered broker key; the receipt is stored
  (both signatures: the receipt "signed by both"). Then, in one streaming pass,
  the ciphertext's CID is recomputed as it arrives and must equal the anchored
  CID, and the plaintext must hash to the anchored SHA-256.

A refusal by the owner comes back as the same error class and code the owner
answered (``grant.revoked``, ``exchange.replayed``, ...).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from govshare.broker.db import AccessRequest, Receipt, Record, RecordStatus, RequestStatus
from govshare.broker.errors import (
    PEER_REFUSALS,
    CiphertextMismatch,
    ExchangeExpired,
    ExchangeUnknown,
    GrantDepartmentInactive,
    NoGrant,
    PeerRefused,
    PeerUnreachable,
    RangeInvalid,
    ReceiptInvalid,
    RecordUnknown,
    TransferIncomplete,
)
from govshare.broker.exchange import (
    H_CAPSULE,
    H_EXCHANGE,
    H_SIGNATURE,
    ExchangeReceipt,
    ExchangeRequest,
    ExchangeResume,
    capsule_hash,
    decode_capsule,
    parse_exchange_id,
)
from govshare.broker.queries import batched_leaf
from govshare.chain.batchindex import IndexedLeaf
from govshare.chain.contracts import Department, to_bytes32
from govshare.chain.contracts import Record as ChainRecord
from govshare.clock import utcnow
from govshare.crypto import DecryptResult, decrypt_to_file, unwrap_dek
from govshare.errors import GovShareError, InputError, IntegrityError, from_problem
from govshare.storage import BlockCorrupted, parse_cid
from govshare.storage.unixfs import FileImporter
from govshare.util import FAR_FUTURE, chain_time

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

_MAX_PROBLEM = 64 * 1024
#: A broken transfer from the owner is resumed at most this many times per fetch.
MAX_RESUMES = 3


@dataclass(frozen=True)
class FetchResult:
    record_id: str
    owner: str
    source: str  # "own" | "exchange"
    path: Path
    sha256: str  # hex, verified against the anchored hash
    size: int
    grant_id: int | None = None
    receipt_seq: int | None = None
    filename: str | None = None
    media_type: str | None = None
    #: The exchange's id (its request hash), to resume it (:func:`resume_fetch`).
    exchange: str | None = None


class CidCheck:
    """Pass ciphertext chunks through while rebuilding their UnixFS DAG (as
    ``ipfs add`` would); after the last chunk, raise :class:`CiphertextMismatch`
    unless its CID is the ``expected`` one. Fed to ``decrypt_to_file``, that
    error lands before the plaintext is renamed into place.

    When decryption fails first (a wrong envelope fails at its header), the
    rest of the stream can be read (up to ``drain_limit`` bytes) to tell the
    two cases apart: :meth:`verdict` raises :class:`CiphertextMismatch` when the
    bytes were not the anchored ones at all."""

    def __init__(self, chunks: Iterable[bytes], expected: str, *, drain_limit: int = 64 << 20):
        self.expected = parse_cid(expected)
        self._src = iter(chunks)
        self._importer = FileImporter(lambda _c, _b: None, cid_version=self.expected.version)
        self._done = False
        self._drain_limit = drain_limit

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._src:
            self._importer.write(chunk)
            yield chunk
        self._check()

    def _check(self) -> None:
        if self._done:
            return
        self._done = True
        got = self._importer.finish().cid
        if str(got) != str(self.expected):
            raise CiphertextMismatch(
                f"The ciphertext received is not the anchored one (its CID is {got}, the "
                f"chain says {self.expected}); nothing was released.",
                expected=str(self.expected),
                actual=str(got),
            )

    def verdict(self) -> None:
        """After a failure downstream: read what is left and check the CID."""
        read = 0
        for chunk in self._src:
            read += len(chunk)
            if read > self._drain_limit:
                return  # too much to tell: keep the downstream error
            self._importer.write(chunk)
        self._check()


def _decrypt_checked(
    chunks: Iterable[bytes],
    cid: str,
    dst: Path,
    dek: bytes,
    sha256: bytes | str,
    overwrite: bool,
    durable: bool = True,
) -> DecryptResult:
    check = CidCheck(chunks, cid)
    try:
        return decrypt_to_file(
            iter(check), dst, dek, expected_sha256=sha256, overwrite=overwrite, durable=durable
        )
    except IntegrityError as exc:
        if not isinstance(exc, CiphertextMismatch):
            try:
                check.verdict()
            except CiphertextMismatch as mismatch:
                raise mismatch from exc
        raise


def fetch(
    svc: BrokerServices,
    record_id: bytes | str,
    dst: Path,
    *,
    grant_id: int | None = None,
    overwrite: bool = False,
    durable: bool = True,
) -> FetchResult:
    """Write the plaintext of ``record_id`` to ``dst``: from this broker's store
    for an own record, else from its owner's broker under a grant (``grant_id``,
    or the best one this department holds for the record). ``durable=False``:
    ``dst`` is read once and deleted (see :func:`decrypt_to_file`)."""
    rid = "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()
    with svc.db.session(readonly=True) as s:
        row = s.get(Record, rid)
        if row is not None and row.status == RecordStatus.ANCHORED.value:
            s.expunge(row)
            return read_own(svc, row, dst, overwrite=overwrite, durable=durable)
    rec = svc.chain_cache.anchor(rid)  # immutable once anchored
    if rec is None:
        leaf = batched_leaf(svc, rid)
        if leaf is not None and leaf.record.department != svc.dept:
            if grant_id is not None:  # e.g. a grant by subject, which names no record
                return fetch_granted(
                    svc, leaf_record(leaf), grant_id, dst, overwrite=overwrite, durable=durable
                )
            # Another department's record, anchored in a batch: asking for it puts it
            # on chain, so without it on chain there is no request, and no grant.
            choose_grant(svc, rid, leaf.record.department)
        raise RecordUnknown(f"There is no anchored record {rid}.", record_id=rid)
    if rec.department == svc.dept:
        raise RecordUnknown(f"Record {rid} is {svc.dept}'s but this broker does not hold it.")
    grant = grant_id if grant_id is not None else choose_grant(svc, rid, rec.department)
    return fetch_granted(svc, rec, grant, dst, overwrite=overwrite, durable=durable)


def leaf_record(leaf: IndexedLeaf) -> ChainRecord:
    """A record anchored in a batch, as the exchange checks a delivery against it
    (owner, CID, SHA-256): its leaf, which the mirror checked against the batch's
    root on chain."""
    b = leaf.record
    return ChainRecord(
        record_id=b.record_id,
        department=b.department,
        content_hash=b.content_hash,
        cid=b.cid,
        category=b.category,
        subject_ref=b.subject_ref,
        previous_record_id=b.previous_record_id,
        superseded_by=None,
        anchored_by=leaf.batch.anchored_by,
        anchored_at=0,  # the batch's time, not needed to check a delivery
    )


def read_own(
    svc: BrokerServices, row: Record, dst: Path, *, overwrite: bool = False, durable: bool = True
) -> FetchResult:
    """Decrypt an own anchored record from the store to ``dst``."""
    assert row.own_capsule is not None and row.cid is not None
    rid = bytes.fromhex(row.record_id[2:])
    dek = svc.own_dek(row.own_capsule, rid)
    res = _decrypt_checked(
        svc.store.get(row.cid), row.cid, dst, dek, row.sha256, overwrite, durable
    )
    return FetchResult(
        record_id=row.record_id,
        owner=svc.dept,
        source="own",
        path=Path(dst),
        sha256=res.plaintext_sha256.hex(),
        size=res.plaintext_size,
        filename=row.filename,
        media_type=row.media_type,
    )


def choose_grant(svc: BrokerServices, record_id: str, owner: str) -> int:
    """This department's grant for ``record_id`` (see :func:`best_grant`)."""
    row = best_grant(svc, owner, AccessRequest.record_id == record_id)
    if row is None:
        raise NoGrant(
            f"{svc.dept} holds no grant for record {record_id}: ask {owner} for it first "
            "(`govshare request create`, or POST /v1/requests).",
            record_id=record_id,
        )
    return int(row.request_id)


def best_grant(svc: BrokerServices, owner: str, match: ColumnElement[bool]) -> AccessRequest | None:
    """This department's request to ``owner`` matching ``match`` that it should
    use: the newest that looks usable (approved, not expired, uses left), else the
    newest of any status (the owner then says precisely why not: pending, denied,
    revoked, ...); None when there is none. The local view is brought up to date
    from the chain once when it has no usable one."""
    now = utcnow(svc.clock)
    rows: list[AccessRequest] = []
    for attempt in range(2):
        with svc.db.session(readonly=True) as s:
            rows = list(
                s.scalars(
                    select(AccessRequest).where(
                        AccessRequest.requester == svc.dept, AccessRequest.owner == owner, match
                    )
                ).all()
            )
            for row in rows:
                s.expunge(row)
        rows.sort(key=lambda r: int(r.request_id), reverse=True)
        usable = [
            r
            for r in rows
            if r.status == RequestStatus.APPROVED.value
            and r.expires_at is not None
            and r.expires_at > now
            and (r.max_uses is None or r.uses < r.max_uses)
        ]
        if usable:
            return usable[0]
        if attempt == 0:
            svc.sync.run_once()
    return rows[0] if rows else None


def fetch_granted(
    svc: BrokerServices,
    rec: ChainRecord,
    grant_id: int,
    dst: Path,
    *,
    overwrite: bool = False,
    durable: bool = True,
) -> FetchResult:
    """The requester's side of the exchange (see the module docstring)."""
    ledger = svc.ledger
    owner = svc.chain_cache.department(rec.department)  # dropped by the mirror on change
    if not owner.active:
        raise GrantDepartmentInactive(f"{owner.code} is not an active department.")
    domain = svc.domain
    url = owner.endpoint.rstrip("/") + "/v1/exchange"
    # The request's time comes from the chain's last block as read within the
    # last second; if the owner finds it expired all the same (the chain moved
    # on), one new request is signed on a fresh reading. Nothing was spent.
    for fresh in (False, True):
        now = ledger.now() if fresh else ledger.recent_now()
        req = ExchangeRequest.new(
            svc.dept, owner.code, grant_id, rec.record_id, now=now, ttl=svc.limits.exchange_ttl
        )
        signature = req.sign(svc.account, domain)
        headers = {H_SIGNATURE: "0x" + signature.hex(), "Accept": "application/octet-stream"}
        try:
            with svc.http.stream("POST", url, json=req.to_json(), headers=headers) as resp:
                if resp.status_code != 200:
                    try:
                        raise_refusal(resp, owner.code)
                    except ExchangeExpired:
                        if fresh:
                            raise
                        continue
                capsule = decode_capsule(resp.headers.get(H_CAPSULE))
                receipt, owner_sig = ExchangeReceipt.from_headers(resp.headers)
                _check_receipt(svc, req, receipt, owner_sig, capsule, rec, owner.broker)
                _keep_receipt(svc, req, receipt, signature, owner_sig, owner.code)
                res = _receive(
                    svc, resp, rec, grant_id, owner, capsule, receipt, dst, overwrite, durable
                )
                break
        except httpx.HTTPError as exc:
            raise _transport_error(exc, owner) from None
    svc.acks.submit(owner.code, receipt)  # after the answer, when the broker's threads run
    log.info(
        "fetched record 0x%s from %s under grant %d", rec.record_id.hex(), owner.code, grant_id
    )
    return FetchResult(
        record_id="0x" + rec.record_id.hex(),
        owner=owner.code,
        source="exchange",
        path=Path(dst),
        sha256=res.plaintext_sha256.hex(),
        size=res.plaintext_size,
        grant_id=grant_id,
        receipt_seq=receipt.seq,
        exchange="0x" + receipt.request_hash.hex(),
    )


def _transport_error(exc: httpx.HTTPError, owner: Department) -> GovShareError:
    if isinstance(exc, httpx.TimeoutException):
        return PeerUnreachable(f"{owner.code}'s broker did not answer in time; try again.")
    if isinstance(exc, httpx.ConnectError):
        return PeerUnreachable(
            f"{owner.code}'s broker at {owner.endpoint} cannot be reached; try again later."
        )
    return TransferIncomplete(
        f"The transfer from {owner.code}'s broker broke off and could not be resumed; "
        "nothing was released. Fetching again within the resume window continues the "
        "same exchange (no new use)."
    )


def _receive(
    svc: BrokerServices,
    resp: httpx.Response,
    rec: ChainRecord,
    grant_id: int,
    owner: Department,
    capsule: bytes,
    receipt: ExchangeReceipt,
    dst: Path,
    overwrite: bool,
    durable: bool,
) -> DecryptResult:
    """Open the capsule and decrypt the answer's body to ``dst``, checked, resuming
    the transfer where it broke off (:class:`ResumingBody`)."""
    dek = unwrap_dek(
        capsule, svc.hpke, record_id=rec.record_id, grant_id=grant_id, recipient_dept=svc.dept
    )
    size = int(resp.headers.get("content-length") or -1)
    body = ResumingBody(svc, owner, resp, receipt, size)
    return _decrypt_checked(body, rec.cid, dst, dek, rec.content_hash, overwrite, durable)


class ResumingBody:
    """The ciphertext of an exchange's answer, continued where it broke off: when
    the connection drops mid-body, the exchange is resumed (``POST
    /v1/exchange/resume`` with ``Range: bytes=N-``, no new use) up to
    :data:`MAX_RESUMES` times, and the bytes that follow are checked to belong to
    the same exchange (its receipt number, capsule and size) before they are
    passed on. What was received is never asked for again."""

    def __init__(
        self,
        svc: BrokerServices,
        owner: Department,
        first: httpx.Response,
        receipt: ExchangeReceipt,
        size: int,
    ) -> None:
        self.svc = svc
        self.owner = owner
        self.first = first
        self.receipt = receipt
        self.size = size
        #: Resumes made, and the bytes received in all (each counted once).
        self.resumes = 0
        self.received = 0

    def __iter__(self) -> Iterator[bytes]:
        resp = self.first
        with contextlib.ExitStack() as stack:
            while True:
                try:
                    for chunk in resp.iter_bytes():
                        self.received += len(chunk)
                        yield chunk
                    if self.size < 0 or self.received >= self.size:
                        return
                except httpx.TransportError as exc:
                    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                        raise
                if self.resumes >= MAX_RESUMES or self.svc.limits.resume_window <= 0:
                    raise _transport_error(httpx.ReadError("broke off"), self.owner)
                self.resumes += 1
                log.info(
                    "exchange %s from %s broke off after %d of %d bytes; resuming (%d of %d)",
                    "0x" + self.receipt.request_hash.hex(),
                    self.owner.code,
                    self.received,
                    self.size,
                    self.resumes,
                    MAX_RESUMES,
                )
                resp = stack.enter_context(
                    open_resume(self.svc, self.owner, self.receipt.request_hash, self.received)
                )
                _check_resumed(resp, self.receipt, self.received, self.size, self.owner.code)


@contextlib.contextmanager
def open_resume(
    svc: BrokerServices, owner: Department, request_hash: bytes, offset: int
) -> Iterator[httpx.Response]:
    """The owner's answer to a resume of exchange ``request_hash`` from byte
    ``offset`` of its ciphertext (a refusal raises as the owner's error)."""
    now = svc.ledger.recent_now()
    req = ExchangeResume.new(
        svc.dept, owner.code, request_hash, now=now, ttl=svc.limits.exchange_ttl
    )
    headers = {
        H_SIGNATURE: "0x" + req.sign(svc.account, svc.domain).hex(),
        "Accept": "application/octet-stream",
    }
    if offset:
        headers["Range"] = f"bytes={offset}-"
    url = owner.endpoint.rstrip("/") + "/v1/exchange/resume"
    with svc.http.stream("POST", url, json=req.to_json(), headers=headers) as resp:
        if resp.status_code not in (200, 206):
            raise_refusal(resp, owner.code)
        yield resp


def _check_resumed(
    resp: httpx.Response, receipt: ExchangeReceipt, offset: int, size: int, owner: str
) -> None:
    """The resumed answer continues *this* exchange at ``offset``: the same receipt
    (number, request, capsule) and a Content-Range starting there, of the same size."""
    again, _sig = ExchangeReceipt.from_headers(resp.headers)
    want = f"bytes {offset}-{size - 1}/{size}" if offset else None
    got = resp.headers.get("content-range")
    if again != receipt or (offset and got != want) or (not offset and resp.status_code != 200):
        raise ReceiptInvalid(
            f"{owner}'s resumed answer does not continue the exchange it began "
            f"(receipt {again.seq} vs {receipt.seq}, range {got!r} vs {want!r}); "
            "nothing was released."
        )


def resume_fetch(
    svc: BrokerServices,
    record_id: bytes | str,
    exchange: str,
    dst: Path,
    *,
    durable: bool = True,
) -> FetchResult:
    """Fetch ``record_id`` again through exchange ``exchange`` (its request hash),
    which this department began: the owner answers the same ciphertext, capsule
    and receipt without spending a use, within its resume window. Everything is
    checked as in a first fetch (receipt, CID, anchored hash) before ``dst`` is
    written. An exchange that is not this department's for this record is
    :class:`ExchangeUnknown`."""
    rid = "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()
    xid = "0x" + parse_exchange_id(exchange).hex()
    with svc.db.session(readonly=True) as s:
        row = s.scalars(
            select(Receipt).where(
                Receipt.request_hash == xid,
                Receipt.requester == svc.dept,
                Receipt.owner != svc.dept,
            )
        ).first()
        if row is not None:
            s.expunge(row)
    if row is None or row.record_id != rid:
        raise ExchangeUnknown(
            f"{svc.dept} began no exchange {xid} for record {rid}; fetch the record instead.",
            exchange=xid,
        )
    rec = svc.chain_cache.anchor(rid)
    if rec is None:
        leaf = batched_leaf(svc, rid)
        if leaf is None:
            raise RecordUnknown(f"There is no anchored record {rid}.", record_id=rid)
        rec = leaf_record(leaf)
    owner = svc.chain_cache.department(row.owner)
    receipt = ExchangeReceipt(
        request_hash=bytes.fromhex(xid[2:]),
        ciphertext_cid=row.ciphertext_cid,
        capsule_hash=bytes.fromhex(row.capsule_hash[2:]),
        seq=int(row.seq),
        issued_at=int(row.issued_at.timestamp()),
    )
    try:
        with open_resume(svc, owner, receipt.request_hash, 0) as resp:
            capsule = decode_capsule(resp.headers.get(H_CAPSULE))
            _check_resumed(
                resp, receipt, 0, int(resp.headers.get("content-length") or 0), owner.code
            )
            if capsule_hash(capsule) != receipt.capsule_hash or rec.cid != receipt.ciphertext_cid:
                raise ReceiptInvalid(
                    f"{owner.code}'s resumed answer names another capsule or ciphertext than "
                    "its receipt; nothing was released."
                )
            grant = int(row.grant_id)
            res = _receive(svc, resp, rec, grant, owner, capsule, receipt, dst, False, durable)
    except httpx.HTTPError as exc:
        raise _transport_error(exc, owner) from None
    if row.ack_signature is None:
        svc.acks.submit(owner.code, receipt)
    log.info("fetched record %s again through exchange %s (no use spent)", rid, xid)
    return FetchResult(
        record_id=rid,
        owner=owner.code,
        source="exchange",
        path=Path(dst),
        sha256=res.plaintext_sha256.hex(),
        size=res.plaintext_size,
        grant_id=int(row.grant_id),
        receipt_seq=receipt.seq,
        exchange=xid,
    )


def raise_refusal(resp: httpx.Response, owner: str) -> None:
    """Raise what the owner's broker answered instead of 200: its own error
    class and code when it is one a peer may send (``PEER_REFUSALS``), else
    :class:`PeerUnreachable` (502–504) or :class:`PeerRefused`."""
    raw = b""
    for chunk in resp.iter_bytes():
        raw += chunk
        if len(raw) > _MAX_PROBLEM:
            break
    try:
        body = json.loads(raw[:_MAX_PROBLEM])
    except ValueError:
        body = {}
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    detail = str(body.get("detail", "")) if isinstance(body, dict) else ""
    detail = detail[:500] or f"HTTP {resp.status_code}"
    if code == BlockCorrupted.code:
        raise BlockCorrupted(
            f"{owner}'s stored copy of the record is damaged ({detail}); nothing was released.",
            owner=owner,
        )
    if isinstance(body, dict) and code:
        # The peer's own details are not relayed: they describe its state, not ours.
        err = from_problem(
            {"code": code}, resp.status_code, message=f"{owner}'s broker refused: {detail}"
        )
        if isinstance(err, PEER_REFUSALS):
            err.details = {"owner": owner}
            raise err
    if resp.status_code in (502, 503, 504):
        raise PeerUnreachable(
            f"{owner}'s broker cannot serve now ({code or resp.status_code}): {detail}",
            owner=owner,
            peer_code=code,
        )
    raise PeerRefused(
        f"{owner}'s broker refused ({code or resp.status_code}): {detail}",
        owner=owner,
        peer_code=code,
        peer_status=resp.status_code,
    )


def _check_receipt(
    svc: BrokerServices,
    req: ExchangeRequest,
    receipt: ExchangeReceipt,
    owner_sig: bytes,
    capsule: bytes,
    rec: ChainRecord,
    owner_broker: str,
) -> None:
    domain = svc.domain
    problems = []
    if receipt.request_hash != req.digest(domain):
        problems.append("it is for another request")
    if receipt.ciphertext_cid != rec.cid:
        problems.append("it names another ciphertext than the anchored one")
    if receipt.capsule_hash != capsule_hash(capsule):
        problems.append("it names another capsule than the one sent")
    if not problems and receipt.signer(domain, owner_sig).lower() != owner_broker.lower():
        problems.append(f"it is not signed by {rec.department}'s registered broker key")
    if problems:
        raise ReceiptInvalid(
            f"{rec.department}'s receipt does not hold: {'; '.join(problems)}. "
            "Nothing was released."
        )


_KEEP_RECEIPT = insert(Receipt)  # built once: this is the hot path


def _keep_receipt(
    svc: BrokerServices,
    req: ExchangeRequest,
    receipt: ExchangeReceipt,
    requester_sig: bytes,
    owner_sig: bytes,
    owner: str,
) -> None:
    try:
        with svc.db.writing() as conn:  # Core: this is the hot path
            conn.execute(
                _KEEP_RECEIPT,
                {
                    "owner": owner,
                    "seq": receipt.seq,
                    "grant_id": str(req.grant_id),
                    "record_id": "0x" + req.record_id.hex(),
                    "requester": svc.dept,
                    "request_hash": "0x" + receipt.request_hash.hex(),
                    "nonce": str(req.nonce),
                    "request_expires_at": req.expires_at,
                    "ciphertext_cid": receipt.ciphertext_cid,
                    "capsule_hash": "0x" + receipt.capsule_hash.hex(),
                    # (the owner's number: from_headers bounds it to a real date)
                    "issued_at": chain_time(receipt.issued_at) or FAR_FUTURE,
                    "requester_signature": "0x" + requester_sig.hex(),
                    "owner_signature": "0x" + owner_sig.hex(),
                },
            )
    except SAIntegrityError:
        raise ReceiptInvalid(
            f"{owner} numbered this receipt {receipt.seq}, a number it already used; "
            "nothing was released."
        ) from None


def fetch_content(
    svc: BrokerServices,
    record_id: bytes | str,
    dst: Path,
    *,
    grant_id: int | None = None,
    exchange: str | None = None,
    ranged: bool = False,
    durable: bool = True,
) -> FetchResult:
    """What the content route serves: a continued exchange (``exchange``: no new
    use, :func:`resume_fetch`), else :func:`fetch`. A byte range (``ranged``) of
    another department's record must name the exchange it continues: a range of
    a new fetch would spend a use for part of a record, so it is refused
    (:class:`RangeInvalid`) before anything is asked of the owner."""
    if exchange is not None:
        if grant_id is not None:
            raise InputError("Name an exchange to continue, or a grant for a new fetch; not both.")
        return resume_fetch(svc, record_id, exchange, dst, durable=durable)
    if ranged:
        rid = "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()
        with svc.db.session(readonly=True) as s:
            row = s.get(Record, rid)
            own = row is not None and row.status == RecordStatus.ANCHORED.value
        if not own:
            raise RangeInvalid(
                f"A byte range of another department's record continues an exchange: send "
                f"the {H_EXCHANGE} header of the first answer (a new fetch would spend a use).",
                record_id=rid,
            )
    return fetch(svc, record_id, dst, grant_id=grant_id, durable=durable)
