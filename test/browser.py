"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: open a page, wait, screenshot."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader", "--window-size=1600,1000"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


class Browser:
    """One headless Chromium with a fresh profile; ``screenshot(url, settle)`` returns PNG bytes."""

    def __init__(self):
        self.profile = tempfile.TemporaryDirectory(prefix="dp_ros_chromium_")
        self.port = free_port()
        self.process = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={self.profile.name}",
                                         f"--remote-debugging-port={self.port}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_http(f"http://127.0.0.1:{self.port}/json/version", 60):
            self.close()
            raise RuntimeError("chromium did not open its DevTools port")
        self._id = 0
        self.reply_timeout = 180.0
        """Seconds a DevTools call may take (a software-rendered frame on a loaded CPU is slow)."""

    def _page_socket(self):
        from websockets.sync.client import connect

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as response:
            pages = [p for p in json.load(response) if p["type"] == "page"]
        return connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20)

    def _call(self, ws, method: str, **params):
        self._id += 1
        ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            reply = json.loads(ws.recv(timeout=self.reply_timeout))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def screenshot(self, url: str, settle: float, until=None, timeout: float = 120.0) -> bytes:
        """Open ``url``, wait ``settle`` seconds, then take screenshots until ``until(png)`` holds (or timeout)."""
        with self._page_socket() as ws:
            self._call(ws, "Page.enable")
            self._call(ws, "Page.navigate", url=url)
            time.sleep(settle)
            deadline = time.monotonic() + timeout
            while True:
                png = base64.b64decode(self._call(ws, "Page.captureScreenshot", format="png")["data"])
                if until is None or until(png) or time.monotonic() > deadline:
                    return png
                time.sleep(2.0)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.profile.cleanup()
