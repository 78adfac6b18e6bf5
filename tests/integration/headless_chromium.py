"""Headless Chromium driven over the Chrome DevTools Protocol, with nothing
but aiohttp (already a dependency): the system's ``chromium`` (Debian's
package; ``.ci/run`` installs it), started with ``--remote-debugging-port=0``,
which writes the port it chose to ``DevToolsActivePort`` in its profile
directory; the page target's websocket then takes JSON commands.

Fewer moving parts than playwright (no browser download, no driver process):
a test needs to load a page, evaluate JavaScript in it, click and type
through the DOM, and take a screenshot."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

INSTALL_HINT = "chromium missing: install Debian's package (`apt-get install -y chromium`; .ci/run does it)"
WINDOW = (1366, 900)  # a laptop screen


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found is not None, INSTALL_HINT
    return found


class PageError(AssertionError):
    """A command the page refused, or a script that threw."""


@dataclass
class Page:
    ws: aiohttp.ClientWebSocketResponse
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call = next(self.ids)
        await self.ws.send_str(json.dumps({"id": call, "method": method, "params": params}))
        while True:  # events (no id) and nothing else arrive in between: this client sends one command at a time
            message = await self.ws.receive(timeout=60)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise PageError(f"devtools connection closed: {message.type}")
            answer = json.loads(message.data)
            if answer.get("id") == call:
                if "error" in answer:
                    raise PageError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited if a promise), as JSON."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise PageError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str, timeout: float = 30) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", timeout)

    async def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Until ``expression`` is truthy in the page; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise PageError(f"still false after {timeout}s: {expression}")
            await asyncio.sleep(0.2)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Chromium:
    """One headless browser with one page; ``async with Chromium(profile) as page``."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Page:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=(self.profile / "chromium.log").open("wb"))
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, f"chromium exited: see {self.profile / 'chromium.log'}"
            assert time.monotonic() < deadline, "chromium did not open its devtools port in 30 s"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        driven = Page(ws)
        await driven.send("Page.enable")
        await driven.send("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                          deviceScaleFactor=1, mobile=False)
        return driven

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
