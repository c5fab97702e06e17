"""The unit tier: our own logic with fakes of our own ports, in a process of its own (`make unit`),
with no network: a test that opens a socket fails, naming where it tried to go."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(self: socket.socket, address: Any, *args: Any) -> None:
        raise NetworkUsed(f"a unit test opened a connection to {address!r}: use a fake of the port instead")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: refuse(None, args[:2]))  # type: ignore[arg-type]
    yield
