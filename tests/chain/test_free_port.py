"""Ports for test and dev servers: outside the kernel's ephemeral range, so an
outgoing connection cannot take one before its server binds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from govshare.chain import devnode
from govshare.chain.devnode import free_port, port_bindable


def _ephemeral() -> tuple[int, int]:
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return low, high


def test_free_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    low, high = _ephemeral()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(not (low <= p <= high) for p in ports), (low, high, ports)
    assert all(port_bindable("127.0.0.1", p) for p in ports)


def test_a_port_held_by_an_outgoing_connection_is_not_bindable() -> None:
    # A listener, and a client whose local port the kernel picked: a connect probe
    # of the client's port finds nothing listening, but a server could not bind it.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_bindable("127.0.0.1", server.getsockname()[1])
        with socket.create_connection(server.getsockname()) as client:
            taken = client.getsockname()[1]
            assert not port_bindable("127.0.0.1", taken)
            accepted, _ = server.accept()
            accepted.close()


def test_without_a_readable_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(devnode, "_EPHEMERAL_RANGE", tmp_path / "absent")
    port = free_port()
    assert 0 < port < 65_536 and port_bindable("127.0.0.1", port)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32768\t60999\n", (10_000, 32_752)),
        ("1024 60999", (61_000, 65_519)),  # no room below: above
        ("1024 65000", None),  # no room anywhere: the kernel picks
        ("garbage", None),
    ],
)
def test_the_pick_range(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: tuple[int, int] | None
) -> None:
    f = tmp_path / "range"
    f.write_text(text)
    monkeypatch.setattr(devnode, "_EPHEMERAL_RANGE", f)
    assert devnode._pick_range() == expected
