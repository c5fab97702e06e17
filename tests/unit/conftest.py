"""The unit tier: our own logic with fakes of our own ports, in a process of its own (`make unit`),
with no network: a test that opens a socket fails, naming where it tried to go. Nor does it reach
for the AWS emulator or the template translator: importing moto or samtranslator here fails,
naming the importer (what needs them is the integration tier's)."""

from __future__ import annotations

import importlib.abc
import socket
import sys
import traceback
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest

OUT_OF_REACH = ("moto", "samtranslator")


class EmulatorImported(ImportError):
    pass


class _OutOfReach(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if fullname.split(".")[0] in OUT_OF_REACH:
            ours = [frame for frame in traceback.extract_stack() if "importlib" not in frame.filename]
            caller = f"{ours[-2].filename}:{ours[-2].lineno}" if len(ours) > 1 else "?"
            raise EmulatorImported(
                f"the unit tier imported {fullname} (from {caller}): that belongs in tests/integration"
            )
        return None


# Only when the unit tier runs on its own (as make unit runs it): a session that has loaded the
# offline stack already (pytest tests, all tiers) keeps what it loaded.
if not any(name in sys.modules for name in OUT_OF_REACH):
    sys.meta_path.insert(0, _OutOfReach())


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
