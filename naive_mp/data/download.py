"""Fetch daily trades files from Binance's public data archive, verified by SHA-256.

The archive publishes one zip per symbol and day, with a checksum beside it::

    BASE/data/spot/daily/trades/XRPUSDT/XRPUSDT-trades-2019-06-01.zip
    BASE/data/spot/daily/trades/XRPUSDT/XRPUSDT-trades-2019-06-01.zip.CHECKSUM
        (one line: "<sha256 hex>  XRPUSDT-trades-2019-06-01.zip")

What :meth:`Archive.download` guarantees:

* A file under its final name is whole and matches the archive's checksum.
  Bytes in flight go to ``NAME.part`` in the same folder, renamed over the
  final name (atomic on one file system) only once verified; a download whose
  checksum is wrong is deleted, never kept.
* A file already there and intact costs one small ``.CHECKSUM`` request; the
  zip itself is not asked for.  A broken one (truncated, wrong bytes) leaves
  the final name at once and becomes the ``.part`` to resume from.
* A transfer cut short is resumed with an HTTP ``Range`` request, within the
  run (a few times) or by the next run from the ``.part`` it left; a server
  that ignores ``Range`` sends the whole file again.  If resumed bytes give a
  wrong checksum (an older version of the file, say), it starts over once.
* Every failure is a :class:`DownloadError` with a readable message, caught
  per day: one day's failure never stops the others.

No click, no printing: progress goes to a callback the caller supplies.  The
files it writes (the locked ``.part``, the ``.CHECKSUM``) are
:mod:`naive_mp.data.partfile`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import http.client
import os
import re
import time
from pathlib import Path
from typing import Callable, ContextManager

import requests
import urllib3

from naive_mp.data.partfile import PartFile, PartFileBusy, sha256_file, take_broken, write_checksum

DEFAULT_BASE_URL = "https://data.binance.vision"
TIMEOUT_S = 30.0
_CHUNK = 1 << 16
_MAX_TRIES = 50  # even when every try makes progress, a server that drips bytes must end
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_SYMBOL = re.compile(r"[A-Z0-9]{2,30}\Z")
_CHECKSUM = re.compile(r"([0-9a-fA-F]{64})(?:[ \t]+\*?(\S+))?\Z")
_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)\Z")

# progress(label, total bytes, bytes already there) -> a context yielding advance(n)
ProgressFactory = Callable[[str, int, int], ContextManager[Callable[[int], None]]]


class Status(enum.Enum):
    """What happened to one day."""

    DOWNLOADED = "downloaded"
    PRESENT = "already present"
    REFETCHED = "refetched"
    MISSING = "missing"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One day's result: `path` is a verified tape unless the status is MISSING or FAILED."""

    symbol: str
    day: dt.date
    status: Status
    path: Path
    detail: str = ""
    size: int = 0

    @property
    def ok(self) -> bool:
        """True when `path` now holds the day's verified tape."""
        return self.status not in (Status.MISSING, Status.FAILED)


class DownloadError(Exception):
    """A day that could not be fetched; the message says why."""


class MissingFile(DownloadError):
    """The archive answered 404: it has no such file."""


class _Retryable(DownloadError):
    """A failure another try may cure: a cut connection, a timeout, a 5xx."""


def check_symbol(text: str) -> str:
    """The symbol in upper case (``xrpusdt`` -> ``XRPUSDT``), or ValueError if it cannot be one."""
    symbol = text.strip().upper()
    if not _SYMBOL.match(symbol):
        raise ValueError(f"{text!r} is not a symbol: expected letters and digits, like XRPUSDT")
    return symbol


def tape_name(symbol: str, day: dt.date) -> str:
    """The archive's file name: ``XRPUSDT-trades-2019-06-01.zip``."""
    return f"{symbol}-trades-{day.isoformat()}.zip"


def archive_url(base_url: str, symbol: str, day: dt.date) -> str:
    """Where the archive under `base_url` keeps `symbol`'s trades of `day`."""
    return f"{base_url.rstrip('/')}/data/spot/daily/trades/{symbol}/{tape_name(symbol, day)}"


def no_progress(label: str, total: int, done: int) -> ContextManager[Callable[[int], None]]:
    """The default progress factory: shows nothing."""
    return contextlib.nullcontext(lambda n: None)


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "naive-mp (trades download)"
    return session


@dataclasses.dataclass
class Archive:
    """Binance's public data archive (or a mirror of its layout at `base_url`).

    `timeout` is how long a connection may stay silent; `attempts` how many
    tries in a row without progress a file gets; `retry_delay` the pause
    between those tries.
    """

    base_url: str = DEFAULT_BASE_URL
    timeout: float = TIMEOUT_S
    attempts: int = 3
    retry_delay: float = 1.0
    progress: ProgressFactory = no_progress
    session: requests.Session = dataclasses.field(default_factory=_new_session)

    def download(self, symbol: str, day: dt.date, folder) -> Outcome:
        """Make ``folder/SYMBOL-trades-DAY.zip`` the archive's verified file; never raises for a day."""
        final = Path(folder) / tape_name(symbol, day)
        url = archive_url(self.base_url, symbol, day)
        try:
            return self._download(symbol, day, final, url)
        except MissingFile as exc:
            return Outcome(symbol, day, Status.MISSING, final, str(exc))
        except (DownloadError, PartFileBusy) as exc:
            return Outcome(symbol, day, Status.FAILED, final, str(exc))
        except OSError as exc:  # the local disk: full, read-only, no permission
            where = exc.filename or final
            return Outcome(symbol, day, Status.FAILED, final, f"{where}: {exc.strerror or exc}")

    def _download(self, symbol, day, final: Path, url: str) -> Outcome:
        expected = self._expected_digest(url, final.name)
        if final.exists() and sha256_file(final) == expected:
            return _present(symbol, day, final, expected)
        label, status, detail = f"{symbol} {day}", Status.DOWNLOADED, ""
        with PartFile.open(final.with_name(final.name + ".part")) as target:
            if final.exists():  # looked at again under the lock: another download may have just made it
                if sha256_file(final) == expected:
                    target.path.unlink()
                    return _present(symbol, day, final, expected)
                take_broken(final, target)
                status, detail = Status.REFETCHED, "the file there did not match its checksum"
            size, resumed_from = self._fetch_verified(url, target, final, expected, label)
        write_checksum(final, expected)
        if resumed_from:
            detail = "; ".join(filter(None, [detail, f"resumed from byte {resumed_from:,}"]))
        return Outcome(symbol, day, status, final, detail, size)

    # --- the checksum ------------------------------------------------------

    def _expected_digest(self, url: str, name: str) -> str:
        """The SHA-256 that the archive's ``.CHECKSUM`` file gives for `name`."""
        checksum_url = url + ".CHECKSUM"
        text = self._retrying(lambda: self._get_text(checksum_url)).strip()
        match = _CHECKSUM.match(text)
        if not match:
            raise DownloadError(f"{checksum_url} does not hold '<sha256>  <file name>': {text[:100]!r}")
        if match.group(2) and match.group(2) != name:
            raise DownloadError(f"{checksum_url} is the checksum of {match.group(2)}, not of {name}")
        return match.group(1).lower()

    def _get_text(self, url: str) -> str:
        try:
            with self.session.get(url, timeout=self.timeout, stream=True) as response:
                _check_status(response, url)
                # One line is expected: a wrong --base-url must not make us read a big page.
                return response.raw.read(4096, decode_content=True).decode("ascii", "replace")
        except requests.RequestException as exc:
            raise _Retryable(f"cannot download {url}: {_reason(exc, self.timeout)}") from None

    def _retrying(self, action):
        """`action()`, tried again after a retryable failure, `attempts` times in all."""
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except _Retryable:
                if attempt == self.attempts:
                    raise
                time.sleep(self.retry_delay)
        raise AssertionError("unreachable")

    # --- the file ----------------------------------------------------------

    def _fetch_verified(self, url, target: PartFile, final: Path, expected: str, label: str):
        """Fill `target` from `url`, check it, rename it to `final`: (size, byte resumed from or 0)."""
        self._fill(target, url, label)
        if target.resumed_from and target.digest() != expected:
            # The bytes kept from before may be an older version of the
            # file, or wrong ones: start over once, from nothing.
            target.restart()
            self._fill(target, url, label)
        digest = target.digest()
        if digest != expected:
            target.path.unlink()
            raise DownloadError(f"checksum mismatch: {url} has SHA-256 {digest} but its "
                                f".CHECKSUM says {expected}; the download was deleted")
        os.fsync(target.file.fileno())
        os.replace(target.path, final)
        return target.size(), target.resumed_from

    def _fill(self, target: PartFile, url: str, label: str) -> None:
        """Get the rest of `url` into `target` until the server has sent it all."""
        failures = 0
        for _ in range(_MAX_TRIES):
            before = target.size()
            try:
                self._get_rest(target, url, label)
                return
            except _Retryable as exc:
                gained = target.size() > before
                failures = 0 if gained else failures + 1  # only tries that got nothing count
                if failures >= self.attempts:
                    raise DownloadError(_giving_up(str(exc), target)) from None
                if not gained:
                    time.sleep(self.retry_delay)
        raise DownloadError(_giving_up(f"{url}: still not whole after {_MAX_TRIES} tries", target))

    def _get_rest(self, target: PartFile, url: str, label: str) -> None:
        """One request for the bytes `target` lacks; _Retryable if it ends before the file does."""
        have = target.size()
        # identity: a compressed body would make Range and the byte counts
        # refer to something other than the file.
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                if response.status_code == 416 and have:
                    # Nothing past what we have: it is the whole file, or longer
                    # than the file (then the checksum refuses it).
                    target.resumed_from = target.resumed_from or have
                    return
                total = _body_start(response, target, url)
                with self.progress(label, total, target.size()) as advance:
                    # read1 hands over every byte as it arrives: iter_content
                    # drops a last partial chunk when the connection breaks.
                    while chunk := response.raw.read1(_CHUNK):
                        target.append(chunk)
                        advance(len(chunk))
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise _Retryable(f"cannot download {url}: {_reason(exc, self.timeout)}") from None
        if total and target.size() < total:
            raise _Retryable(f"cannot download {url}: the connection closed at byte "
                             f"{target.size():,} of {total:,}")


def _check_status(response: requests.Response, url: str) -> None:
    """Raise the error a non-2xx answer means; 404 is the archive not having the file."""
    code = response.status_code
    if code == 404:
        raise MissingFile(f"not in the archive ({url} answered 404 Not Found)")
    if code in _RETRYABLE_STATUS:
        raise _Retryable(f"cannot download {url}: the server answered {code} {response.reason}")
    if not 200 <= code < 300:
        raise DownloadError(f"cannot download {url}: the server answered {code} {response.reason}")


def _body_start(response: requests.Response, target: PartFile, url: str) -> int:
    """Ready `target` for the body coming; the whole file's size, 0 if the server does not say."""
    _check_status(response, url)
    have = target.size()
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match:
            raise DownloadError(f"{url}: a partial answer without a usable Content-Range")
        if int(match.group(1)) != have:
            target.restart()
            raise _Retryable(f"{url}: the server sent bytes from {match.group(1)}, not {have}")
        if have:
            target.resumed_from = target.resumed_from or have
        return 0 if match.group(3) == "*" else int(match.group(3))
    # A whole body: the server ignores Range (or none was asked), so it starts over.
    target.restart()
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else 0


def _present(symbol, day, final: Path, digest: str) -> Outcome:
    write_checksum(final, digest)
    return Outcome(symbol, day, Status.PRESENT, final, "", final.stat().st_size)


def _giving_up(message: str, target: PartFile) -> str:
    if target.size():
        return f"{message}; its first {target.size():,} bytes are kept in {target.path}: run again to resume"
    return message


def _reason(exc: BaseException, timeout: float) -> str:
    """A short reason for a network failure ("Connection refused"), not requests' nested repr."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    chain, seen = [exc], set()
    while chain:
        cause = chain.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, (TimeoutError, requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
            return f"the server sent nothing for {timeout:g} s"
        if isinstance(cause, http.client.IncompleteRead):
            return "the connection closed before the end of the file"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        chain += [cause.__cause__, cause.__context__, getattr(cause, "reason", None)]
        chain += [arg for arg in cause.args if isinstance(arg, BaseException)]
    return type(exc).__name__
