"""Headless Chromium for the tests and the live view's benchmark: a screenshot of a page, or a
browser driven over the DevTools protocol."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.request import urlopen

import cv2
import numpy as np


HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(browser: str, url: str, shot: Path, profile: Path, size: tuple[int, int]) -> np.ndarray | None:
    """`url` rendered at `size` (width, height) into the PNG `shot`, read back (None if unreadable)."""
    subprocess.run([browser, *HEADLESS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                    f"--screenshot={shot}", url], check=True, capture_output=True, timeout=120)
    return cv2.imread(str(shot))


class DevTools:
    """Headless Chromium driven over the DevTools protocol (websocket-client)."""

    def __init__(self, browser: str, profile: Path):
        import websocket  # websocket-client (dev extra)

        self.proc = subprocess.Popen(
            [browser, *HEADLESS, "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={profile}", "--window-size=1280,800", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:  # whatever stops the start (a timeout, Ctrl-C), the browser does not outlive it
            active = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.is_file() and active.read_text().strip()):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(active.read_text().split()[0])
            targets = json.load(urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
            page = next(t for t in targets if t["type"] == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def open_live_view(self, url: str, frames: int = 3, timeout: float = 30.0) -> None:
        """Load the live view's page and wait until it has drawn `frames` frames of the stream."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while self.evaluate("typeof framesShown === 'number' ? framesShown : 0") < frames:
            if time.monotonic() > deadline:
                raise AssertionError(f"the page drew fewer than {frames} frames in {timeout:g} s")
            time.sleep(0.2)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]

    def screenshot(self, path: Path) -> np.ndarray:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return cv2.imread(str(path))

    def close(self) -> None:
        if hasattr(self, "ws"):
            self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=20)
