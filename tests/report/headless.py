"""Headless chromium for the report's tests and bench: open a local file, screenshot it or dump its DOM.

Every run gets a fresh profile (parallel runs never share one, nothing lands
in ~/.config) and flags that keep chromium's own background traffic off. A
page's requests can be sent to a local recording proxy (`Recorder`): the
proxy answers nothing and forwards nothing, so no test traffic leaves the
machine, and the test sees every request the page tried to make.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

# Chromium's own traffic (time queries, sign-in, search preconnects, updates) off: with these,
# a page that fetches nothing makes chromium send nothing (the recording proxy sees no request).
OWN_TRAFFIC_OFF = [
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--disable-breakpad", "--disable-domain-reliability", "--metrics-recording-only", "--no-pings",
    "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update", "--dns-prefetch-disable",
    "--disable-search-engine-choice-screen",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationHintsFetching,"
    "OptimizationGuideModelDownloading,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,Translate,"
    "CertificateTransparencyComponentUpdater,SafeBrowsing,PreconnectToSearch,NetworkPrediction,NoStatePrefetch,"
    "Prerender2,LoadingPredictorUseOptimizationGuide",
    "--variations-server-url=http://127.0.0.1:9/", "--google-base-url=http://127.0.0.1:9/",
    "--gaia-url=http://127.0.0.1:9/",
]
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio", *OWN_TRAFFIC_OFF]


def chromium() -> str | None:
    """The chromium executable on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def need_chromium() -> str:
    """chromium, or skip (fail under CI=true: the CI script installs it)."""
    import pytest  # here: the bench uses this module without pytest
    found = chromium()
    if found:
        return found
    message = "chromium is not installed (apt-get install -y chromium): the report's browser tests need it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(page: Path, *flags: str, proxy: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """chromium on a local file with `flags`; with `proxy`, every request goes to 127.0.0.1:proxy."""
    network = [f"--proxy-server=http://127.0.0.1:{proxy}", "--proxy-bypass-list=<-loopback>"] if proxy else \
        ["--host-resolver-rules=MAP * ~NOTFOUND"]  # no name resolves: nothing can leave the machine
    with tempfile.TemporaryDirectory(prefix="naive-mp-chromium-") as profile:
        command = [chromium() or "chromium", *QUIET, *network, f"--user-data-dir={profile}", *flags,
                   Path(page).resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(page: Path, out: Path, width: int = 1300, height: int = 2000, **kw) -> Path:
    """A screenshot of the page's first `width` x `height` pixels."""
    done = run(page, f"--screenshot={out}", f"--window-size={width},{height}", **kw)
    if not out.is_file():
        raise AssertionError(f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return out


def dump_dom(page: Path, budget_ms: int = 5000, **kw) -> str:
    """The DOM after the page loaded (and its load handlers ran), serialized."""
    done = run(page, "--dump-dom", f"--virtual-time-budget={budget_ms}", "--window-size=1300,2000", **kw)
    if "<html" not in done.stdout:
        raise AssertionError(f"chromium dumped no DOM (exit {done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def timed_screenshot(page: Path, out: Path, runs: int = 3, **kw) -> float:
    """The best wall time of `runs` screenshots: chromium starting, loading, laying out and painting the page."""
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        screenshot(page, out, **kw)
        best = min(best, time.perf_counter() - began)
    return best


class Recorder:
    """A local TCP listener that notes every connection (a page's request through the proxy) and drops it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n", 1)[0])  # "GET http://... HTTP/1.1"
                except OSError:
                    self.requests.append(b"(no request line)")
