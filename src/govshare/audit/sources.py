"""Where an auditor reads receipt manifests from, and why the source need not be trusted.

A manifest is named on chain by its CID, beside the Merkle root of its lines.
Whatever answers for a CID, the bytes are hashed again here into a CID
(:func:`govshare.storage.compute_cid`, the same chunking as ``ipfs add``) and
refused unless it is the anchored one; the audit then checks the lines hash to
the anchored root. A source can therefore withhold a manifest (the audit says
so) but never pass off another one. So any of these will do:

* ``local:PATH`` — a blob store directory (the departments' stores in a
  govshare home on the same machine: ``HOME/depts/CODE/blobs``);
* ``kubo:http://HOST:5001`` — a Kubo node of the private swarm (it fetches
  from the owner's node by CID);
* ``http(s)://BROKER`` — a department broker's read-only
  ``GET /v1/audit/manifests/{cid}`` (an auditor or admin token of that broker:
  the ``audit_token`` setting, ``GOVSHARE_AUDIT_TOKEN``).

:func:`default_sources` uses every local store of the home when none is named.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from govshare.audit.errors import ManifestUnavailable
from govshare.errors import GovShareError, InputError
from govshare.storage import BlobStore, compute_cid, open_store, parse_cid

#: Manifests are small (about 800 bytes a receipt, at most 10,000 receipts a batch).
MAX_MANIFEST = 64 * 1024 * 1024


class ManifestSource(Protocol):
    name: str

    def fetch(self, cid: str) -> bytes | None:
        """The bytes stored under ``cid``, or None when this source lacks them."""
        ...


class StoreSource:
    """A blob store (local directory or Kubo). ``swarm``: a Kubo node opened to
    fetch what it lacks from its private swarm (bounded by its ``swarm_timeout``),
    so any member's pinned manifest is found by CID; otherwise only what the store
    holds is read."""

    def __init__(self, store: BlobStore, name: str, *, swarm: bool = False) -> None:
        self.store = store
        self.name = name
        self.swarm = swarm

    def fetch(self, cid: str) -> bytes | None:
        try:
            if not self.swarm and not self.store.has(cid):
                return None
            out = bytearray()
            for chunk in self.store.get(cid):
                out += chunk
                if len(out) > MAX_MANIFEST:
                    return None
            return bytes(out)
        except GovShareError:
            return None


class HttpSource:
    """A broker's ``GET /v1/audit/manifests/{cid}``."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.name = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(
            base_url=self.name, headers=headers, timeout=timeout, follow_redirects=False
        )
        # Dropped without close(): its sockets are released when it is collected.
        self._release = weakref.finalize(self, self.client.close)

    def close(self) -> None:
        self._release()

    def fetch(self, cid: str) -> bytes | None:
        try:
            r = self.client.get(f"/v1/audit/manifests/{cid}")
        except httpx.HTTPError:
            return None
        if r.status_code != 200 or len(r.content) > MAX_MANIFEST:
            return None
        return r.content


class HomeStores:
    """Every department's store in a dev home, found when asked (a department
    registered after this broker started has one too); opened once each."""

    def __init__(self, home: Path, *, skip: Path | None = None) -> None:
        self.home = home
        self.name = f"the stores of {home}"
        self._skip = skip.resolve() if skip is not None else None
        self._open: dict[Path, ManifestSource] = {}

    def _stores(self) -> list[ManifestSource]:
        for path in _home_stores(self.home):
            if path not in self._open and path.resolve() != self._skip:
                self._open[path] = open_source(f"local:{path}")
        return list(self._open.values())

    def fetch(self, cid: str) -> bytes | None:
        for src in self._stores():
            data = src.fetch(cid)
            if data is not None:
                return data
        return None


def open_source(
    url: str,
    *,
    home: Path | None = None,
    token: str | None = None,
    kubo_token: str | None = None,
) -> ManifestSource:
    """A source from its URL (``local:PATH``, ``kubo:URL``, ``http(s)://BROKER``);
    ``token`` is a broker's API token, ``kubo_token`` a Kubo RPC API's."""
    if url.startswith(("http://", "https://")):
        return HttpSource(url, token)
    if url.startswith("kubo:"):
        return swarm_source(url, url, kubo_token=kubo_token, home=home)
    if url.startswith("local:"):
        return StoreSource(open_store(url, home=home, token=kubo_token), url)
    raise InputError(
        f"{url!r} is not a manifest source: use local:PATH, kubo:http://HOST:5001 "
        "or a broker's http(s):// URL."
    )


#: How long a Kubo node may look for a manifest in its swarm, per request.
SWARM_TIMEOUT = 20.0


def swarm_source(
    url: str, name: str, *, kubo_token: str | None = None, home: Path | None = None
) -> StoreSource:
    """A Kubo node (``kubo:URL``) as a manifest source: what it lacks, it fetches
    from its private swarm, where every member pins its manifests."""
    store = open_store(url, home=home, token=kubo_token, swarm_timeout=SWARM_TIMEOUT)
    return StoreSource(store, name, swarm=True)


def _home_stores(home: Path) -> list[Path]:
    """The blob stores of a govshare home: each department's, then the home's own."""
    depts = home / "depts"
    found = sorted(d / "blobs" for d in depts.iterdir()) if depts.is_dir() else []
    return [p for p in [*found, home / "blobs"] if p.is_dir()]


def default_sources(
    home: Path, store: str | None = None, *, kubo_token: str | None = None
) -> list[ManifestSource]:
    """Every blob store found in the govshare home (each department's, and the
    home's own; in a dev home brought up with ``--store kubo``, each department's
    Kubo node, which also reads the swarm), plus ``store`` (the ``store``
    setting) when given."""
    from govshare.storage.devkubo import dev_kubo_urls

    out: list[ManifestSource] = [open_source(f"local:{p}") for p in _home_stores(home)]
    out += [
        swarm_source(f"kubo:{url}", f"{code}'s Kubo node", kubo_token=kubo_token)
        for code, url in dev_kubo_urls(home).items()
    ]
    if store:
        out.append(open_source(store, home=home, kubo_token=kubo_token))
    return out


@dataclass
class ManifestSources:
    """Tries each source in turn; keeps only bytes that hash to the CID asked for."""

    sources: Sequence[ManifestSource]
    #: (source, cid) pairs that answered with other bytes than the CID names.
    rejected: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str],
        *,
        home: Path,
        token: str | None = None,
        store: str | None = None,
        kubo_token: str | None = None,
    ) -> ManifestSources:
        """The sources named by ``urls``, else the home's stores and ``store``;
        the tokens are the ``audit_token`` and ``kubo_token`` settings."""
        given = [open_source(u, home=home, token=token, kubo_token=kubo_token) for u in urls]
        return cls(given or default_sources(home, store, kubo_token=kubo_token))

    def describe(self) -> list[str]:
        return [s.name for s in self.sources]

    def fetch(self, cid: str) -> tuple[bytes, str]:
        """The manifest under ``cid`` and the source that had it; raises
        :class:`ManifestUnavailable` when no source holds bytes with that CID."""
        try:
            want = parse_cid(cid)
        except GovShareError:
            raise ManifestUnavailable(f"{cid!r} is not a CID.", cid=cid) from None
        for src in self.sources:
            data = src.fetch(cid)
            if data is None:
                continue
            if compute_cid(data, cid_version=want.version) != want:
                self.rejected.append((src.name, cid))
                continue
            return data, src.name
        names = ", ".join(self.describe()) or "none configured"
        raise ManifestUnavailable(
            f"No manifest source holds {cid} (tried: {names}); name one with --manifests "
            "(a Kubo node of the swarm, or the owner's broker URL with its auditor token "
            "in GOVSHARE_AUDIT_TOKEN).",
            cid=cid,
        )


def broker_sources(
    store: BlobStore,
    dept: str,
    *,
    urls: str | None,
    home: Path,
    store_url: str | None,
    token: str | None = None,
    kubo_token: str | None = None,
) -> ManifestSources:
    """Where a department's broker reads record batch manifests: its own store
    first (a Kubo node of the private swarm fetches any member's pinned manifest
    by CID), then ``urls`` (comma-separated, the ``manifest_sources`` setting).
    With none given and a local store, the home's other stores (a dev home holds
    every department's). Any source will do: bytes are checked against the CID."""
    own: list[ManifestSource] = [StoreSource(store, f"{dept}'s store")]
    if (store_url or "").startswith("kubo:"):  # and, from its node, the swarm
        own.append(swarm_source(str(store_url), f"{dept}'s Kubo swarm", kubo_token=kubo_token))
    named = [u.strip() for u in (urls or "").split(",") if u.strip()]
    if named:
        extra = [open_source(u, home=home, token=token, kubo_token=kubo_token) for u in named]
    elif not (store_url or "").startswith("kubo:"):
        own_root = getattr(store, "root", None)  # already the first source
        extra = [HomeStores(home, skip=Path(own_root) if own_root is not None else None)]
    else:
        extra = []
    return ManifestSources([*own, *extra])
