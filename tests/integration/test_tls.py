"""``govshare serve --tls-cert/--tls-key``: the broker answers HTTPS with the
given certificate (the compose file publishes only brokers' ports, and those
must not be plain HTTP beyond one host)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from govshare.chain.devnode import AnvilProcess, free_port

from .world import World, build_world, run_cli, spawn_serve


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker-tax")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    node = AnvilProcess(port=free_port()).start()
    w = None
    try:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
        yield w
    finally:
        if w is not None:
            w.close()
        node.stop()


def test_serve_speaks_https_with_the_given_certificate(world: World, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    proc = spawn_serve(
        world, "TAX", env={"GOVSHARE_TLS_CERT": str(cert), "GOVSHARE_TLS_KEY": str(key)}
    )
    url = proc.url.replace("http://", "https://")
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        for _ in range(300):
            if proc.proc.poll() is not None:
                raise AssertionError(proc.log.read_text())
            try:
                r = httpx.get(url + "/healthz", verify=trust, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the broker did not answer HTTPS:\n" + proc.log.read_text())
        assert r.status_code == 200
        # Plain HTTP on that port gets no API answer, and an unknown CA is refused.
        with pytest.raises(httpx.HTTPError):
            httpx.get(proc.url + "/healthz", timeout=2).raise_for_status()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/healthz", timeout=2)
        assert "https://" in proc.log.read_text()
    finally:
        proc.stop()


def test_serve_refuses_half_a_tls_configuration(world: World, tmp_path: Path) -> None:
    cert, _key = self_signed(tmp_path)
    r = run_cli(world, "serve", "--dept", "TAX", "--tls-cert", str(cert))
    assert r.returncode == 2 and "both --tls-cert and --tls-key" in r.stderr
