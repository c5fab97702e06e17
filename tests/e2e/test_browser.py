"""A real browser on another origin: headless Chromium loads `make serve`'s /playground, which
calls the API with fetch (a CORS preflight first: Authorization and JSON), polls the job, then
fetches the image from the results bucket (its CORS rule) and shows it (issue #16.5)."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags this machine's closed network needs (no background connections, no first-run work).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no Chromium here (make test installs Debian's chromium under CI=true)",
)
def test_the_playground_makes_an_image_from_another_origin(served: dict[str, str], tmp_path: Path) -> None:
    assert CHROMIUM is not None, "Chromium is required under CI (make browser installs it)"
    url = served["IMAGEJOBS_PLAYGROUND_URL"] + "&run=1&prompt=a%20paper%20boat&quality=low"
    assert not served["IMAGEJOBS_BASE_URL"].startswith(url.split("/playground")[0])  # another origin
    dom = finished_page(url, tmp_path)
    status = re.search(r'<div id="status">(.*?)</div>', dom, re.S)
    assert "succeeded" in status[1]  # type: ignore[index]
    image = re.search(r'<img id="image"[^>]*data-bytes="(\d+)"', dom)
    assert image and int(image[1]) > 1000  # the bytes of the image, read by the page itself
    assert re.search(r'<div id="cost">cost [0-9.]+ USD', dom)


def finished_page(url: str, profile: Path, deadline_s: float = 120.0) -> str:
    """The page's DOM once its script is done (body data-state="done"), read over the DevTools
    pipe in real time. Not --virtual-time-budget with --dump-dom: that budget "fast-forwards"
    virtual time whenever no network fetch is pending (components/headless/command_handler/
    headless_command_switches.cc), so work off the main thread, such as the SDK page's
    image.decode(), raced it on a loaded machine and the DOM came out mid-await (CI, stop 26)."""
    assert CHROMIUM is not None
    state, dom = DevToolsPipe(CHROMIUM, profile).run_until_final(url, deadline_s)
    status = re.search(r'<div id="status">(.*?)</div>', dom, re.S)
    assert state == "done", (state, status and status[1])
    return dom


class DevToolsError(Exception):
    """An error answer to a DevTools command."""


TRAMPOLINE = (
    "import fcntl, os, sys; ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]; "
    "os.dup2(ends[0], 3); os.dup2(ends[1], 4); os.execvp(sys.argv[3], sys.argv[3:])"
)


class DevToolsPipe:
    """Chromium driven over --remote-debugging-pipe: "remote debug over stdio pipes [in=3, out=4]"
    (content/public/common/content_switches.cc), each JSON message ended by a NUL byte. No
    websocket library needed, and nothing listens on a port."""

    FINAL = ("done", "failed", "error")

    def __init__(self, chromium: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # A Python trampoline puts the two pipe ends on fds 3 and 4 and execs the browser (a
        # `sh -c 'exec ... 3<&N'` does not do: dash marks those fds close-on-exec). F_DUPFD to 10
        # first, so neither end can sit on 3 or 4 already when the other is moved there.
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                TRAMPOLINE,
                str(to_chrome_r),
                str(from_chrome_w),
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
            ],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0

    def run_until_final(self, url: str, deadline_s: float) -> tuple[str, str]:
        """Opens url, then looks at body[data-state] every 0.2 s until it is final or the deadline
        passes; returns that state and the page's HTML as it was then."""
        deadline = time.monotonic() + deadline_s
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"}, deadline)["targetId"]
            session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True}, deadline)["sessionId"]
            self._call("Page.navigate", {"url": url}, deadline, session)
            state = ""
            while time.monotonic() < deadline:
                try:
                    state = self._evaluate("document.body ? document.body.dataset.state || '' : ''", deadline, session)
                except DevToolsError:  # asked while the navigation swapped documents: ask again
                    state = ""
                if state in self.FINAL:
                    break
                time.sleep(0.2)
            # The page as it is now, final or not: what the assertion shows when it is not.
            return state, self._evaluate("document.documentElement.outerHTML", time.monotonic() + 10, session)
        finally:
            self._close()

    def _evaluate(self, expression: str, deadline: float, session: str) -> str:
        answer = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, deadline, session)
        return str(answer.get("result", {}).get("value", ""))

    def _call(self, method: str, params: dict[str, Any], deadline: float, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:  # events (no id) and other answers are skipped
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise DevToolsError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            assert ready, "Chromium did not answer before the deadline"
            chunk = os.read(self._from_chrome, 1 << 20)
            assert chunk, f"Chromium closed its DevTools pipe (exit {self._process.poll()})"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def _close(self) -> None:
        try:
            os.write(self._to_chrome, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self._process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        finally:
            os.close(self._to_chrome)
            os.close(self._from_chrome)
