"""A local stand-in for data.binance.vision: its layout, Range support, and faults on demand.

Only ever listens on 127.0.0.1.  Every request is logged as (method, path,
Range header) so tests can say which files were (not) asked for.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import sys
import threading
import time
import zipfile

ARCHIVE_DIR = "/data/spot/daily/trades"


def tape_csv(n: int, first_id: int = 1, day_ms: int = 1559347200000) -> bytes:
    """`n` trades in the archive's csv layout (no header), prices wandering around 0.43."""
    lines = []
    for k in range(n):
        price = 0.43000 + 0.00010 * ((k * 7) % 23 - 11)
        lines.append(f"{first_id + k},{price:.8f},10.00000000,{price * 10:.8f},{day_ms + k * 1000},"
                     f"{'True' if k % 2 else 'False'},True\n")
    return "".join(lines).encode()


def tape_zip(symbol: str, day: str, n: int = 300) -> bytes:
    """A zip holding ``SYMBOL-trades-DAY.csv``, as the archive's are; the same bytes every time."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(f"{symbol}-trades-{day}.csv", date_time=(2019, 6, 2, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, tape_csv(n))
    return buf.getvalue()


class FakeArchive:
    """Files by URL path, served on 127.0.0.1 from a thread; use as a context manager.

    ``faults[path]`` is a list of faults, one used up per request to `path`:
    ``("cut", n)`` sends the headers of the full answer, then `n` body bytes,
    then closes; ``("stall", n)`` sends `n` bytes then stays silent for
    ``stall_s``; ``("status", code)`` answers `code`.  With ``ranges=False``
    the Range header is ignored, as by a server without Range support.
    """

    def __init__(self, ranges: bool = True, stall_s: float = 3.0):
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[tuple[str, int]]] = {}
        self.log: list[tuple[str, str, str | None]] = []
        self.ranges = ranges
        self.stall_s = stall_s
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def path(self, symbol: str, day: str) -> str:
        """The URL path of a day's zip."""
        return f"{ARCHIVE_DIR}/{symbol}/{symbol}-trades-{day}.zip"

    def publish(self, symbol: str, day: str, data: bytes, digest: str | None = None) -> str:
        """Serve `data` as the day's zip with its .CHECKSUM (of `data` unless `digest`); its path."""
        path = self.path(symbol, day)
        digest = digest or hashlib.sha256(data).hexdigest()
        self.files[path] = data
        self.files[path + ".CHECKSUM"] = f"{digest}  {symbol}-trades-{day}.zip\n".encode()
        return path

    def requests_for(self, path: str) -> list[tuple[str, str, str | None]]:
        """The logged requests for exactly `path`."""
        return [entry for entry in self.log if entry[1] == path]

    def next_fault(self, path: str):
        with self._lock:
            faults = self.faults.get(path)
            return faults.pop(0) if faults else None


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """Clients closing kept-alive connections, or cutting ours, are normal here: no stack dumps."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(archive: FakeArchive):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real archive

        def setup(self):
            super().setup()
            # Headers and body go out as two writes: without this, Nagle's
            # algorithm and delayed ACKs add ~40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args):  # quiet: pytest shows our own log when needed
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            archive.log.append(("GET", self.path, rng))
            data = archive.files.get(self.path)
            fault = archive.next_fault(self.path)
            if data is None or (fault and fault[0] == "status"):
                self._answer(fault[1] if fault else 404, b"not here\n", {})
                return
            start = _range_start(rng) if archive.ranges else None
            if start is not None and start >= len(data):
                self._answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            headers = {"Accept-Ranges": "bytes"} if archive.ranges else {}
            if start is None:
                code, body = 200, data
            else:
                code, body = 206, data[start:]
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._answer(code, body, headers, fault)

        def _answer(self, code, body, headers, fault=None):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/zip")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if fault is None:
                self.wfile.write(body)
                return
            kind, n = fault
            self.wfile.write(body[:n])
            self.wfile.flush()
            if kind == "stall":
                time.sleep(archive.stall_s)
            self.close_connection = True

    return Handler


def _range_start(header: str | None) -> int | None:
    """Start of a ``bytes=N-`` Range (the only form the downloader sends)."""
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    return int(header[len("bytes="):-1])
