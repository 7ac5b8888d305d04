"""A real headless Chromium for the tests of the browser report (tests/test_report_html.py).

:func:`find_chromium` finds Debian's ``chromium`` (``make test`` installs it with apt-get when absent);
:func:`headless` runs one page with a command-line mode (``--dump-dom``, ``--screenshot``);
:class:`Browser` drives one Chromium over the DevTools protocol (``websockets``) for what a person
does with the mouse: hover and click, and collects every console error, uncaught exception and
network request the page makes.
"""
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets.sync.client

# As root in a container Chromium needs --no-sandbox; --disable-gpu: no display, no GPU process work.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--hide-scrollbars"]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    return shutil.which("chromium") or next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                                             if os.path.exists(p)), None)


def headless(chromium: str, url: str, *flags: str, timeout: float = 60) -> tuple[str, list[str]]:
    """Run ``chromium`` once on ``url`` with ``flags``; returns (stdout, the page's console lines).

    With ``--enable-logging=stderr --v=0`` Chromium prints each console message and uncaught
    exception of the page as a ``:CONSOLE`` line on stderr (without its level); the rest of stderr
    is the browser's own noise (D-Bus, GPU) and is dropped.
    """
    proc = subprocess.run([chromium, *FLAGS, "--enable-logging=stderr", "--v=0", *flags, url],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr.strip().splitlines()[-3:]}")
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol.

    ``profile``: an empty folder for the browser's profile (it writes its debugging port there).
    """

    def __init__(self, chromium: str, profile: Path, *, window: tuple[int, int] = (1400, 1000)) -> None:
        self._log = open(Path(profile) / "chromium.log", "w")
        self.proc = subprocess.Popen(
            [chromium, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
             f"--window-size={window[0]},{window[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self._log)
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port; see {self._log.name}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.loads(resp.read()) if t["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            websockets.sync.client.connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self._id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call ``method``; returns its result (events that arrive meanwhile are kept in ``events``)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The first event ``method`` (already received or the next to arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))

    def load(self, url: str) -> None:
        """Open ``url`` and wait for its load event (scripts have run); forgets earlier events."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-like values only)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """The page's console errors, uncaught exceptions and logged errors (CSP, failed loads) so far."""
        self.evaluate("0")   # a round trip: events the page sent before it are in self.events
        found: list[str] = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert", "warning"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                found.append(d.get("exception", {}).get("description") or d.get("text"))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                found.append(p["entry"]["text"])
        return found

    def requests(self) -> list[str]:
        """URLs the page requested since it was loaded."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def mouse(self, kind: str, x: float, y: float) -> None:
        """One mouse event at viewport coordinates (CSS pixels): ``mouseMoved``, ``mousePressed``, ``mouseReleased``."""
        extra = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.mouse(kind, x, y)

    def close(self) -> None:
        if getattr(self, "_stack", None) is not None:
            self._stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
