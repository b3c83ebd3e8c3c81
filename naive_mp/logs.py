"""Log set-up shared by every command: one line per event, to stderr (and a file)."""

import json
import logging
import logging.handlers
import math
import os
import sys
import time

# Log levels by the names the pure core uses in its Notice commands.
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Many processes share one log file: each line names its process ("[leader XRPUSDT 1234]").
PROCESS_FORMAT = "%(asctime)s %(levelname)-7s [%(proc)s %(process)d] %(name)s: %(message)s"

_process_name = "naive-mp"

# A kind of warning repeated faster than this is rate-limited (Throttle).
THROTTLE_BURST = 5
THROTTLE_INTERVAL_S = 10.0


def set_process_name(name: str) -> None:
    """The name put in this process's log lines (PROCESS_FORMAT); a forked child sets its own."""
    global _process_name
    _process_name = name


def process_name() -> str:
    return _process_name


class _ProcessName(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.proc = _process_name
        return True


def _private_opener(path: str, flags: int) -> int:
    # A log lives in the run directory: never written through a symlink planted
    # there, created 0600, and made 0600 if an older naive-mp left it readable.
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    info = os.fstat(fd)
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        os.fchmod(fd, 0o600)
    return fd


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """A log file that is private (0600), never opened through a symlink (OSError ELOOP), and
    opened again when logrotate moves it away (SIGHUP stays the settings reload)."""

    def _open(self):
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,
                    opener=_private_opener)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time (UTC, ISO 8601), level, process, pid, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "process": getattr(record, "proc", _process_name), "pid": record.process,
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


LOG_FORMATS = ("text", "json")


class TerminalHandler(logging.StreamHandler):
    """stderr on a terminal: a line clears a progress line drawn there first (ProgressLine redraws it)."""

    def format(self, record: logging.LogRecord) -> str:
        return "\r\x1b[K" + super().format(record)


class ProgressLine:
    """One line of progress at the bottom of a terminal, redrawn at most twice a second; nothing elsewhere."""

    def __init__(self, stream, every_s: float = 0.5):
        self.stream, self.every_s, self.next = stream, every_s, 0.0
        self.on = stream.isatty()

    def draw(self, text: str | None) -> None:
        now = time.monotonic()
        if not self.on or text is None or now < self.next:
            return
        self.next = now + self.every_s
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()

    def clear(self) -> None:
        if self.on:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


QUIET_LIBRARIES = ("websockets", "urllib3", "binance", "aiohttp")


def setup_logging(level: int = logging.INFO, file: str | None = None, process: str | None = None,
                  log_format: str = "text") -> None:
    """Log at `level` to stderr, and to `file` too when given; `log_format` text or json.

    With `process` (e.g. "supervisor"), every line names the process and its pid.
    The file is private (PrivateFileHandler); raises OSError when it cannot be opened.
    """
    handlers: list[logging.Handler] = [(TerminalHandler if sys.stderr.isatty() else logging.StreamHandler)(sys.stderr)]
    if file is not None:
        handlers.append(PrivateFileHandler(file))
    fmt = FORMAT
    if process is not None:
        set_process_name(process)
        fmt = PROCESS_FORMAT
        for handler in handlers:
            handler.addFilter(_ProcessName())
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)
    for name in QUIET_LIBRARIES:  # their DEBUG lines carry what we sign: the WS-API's apiKey, signed URLs
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    if log_format == "json":
        for handler in handlers:
            handler.setFormatter(JsonFormatter())


class Throttle:
    """One kind of warning, rate-limited: the first `burst` lines, then one line per `interval_s`.

    Anyone who can reach a socket can send it garbage as fast as it likes: 60k rogue
    frames wrote 38,741 lines (5.6 MB) to the log and again to stderr. Once the
    burst is spent, the warnings are held and counted; every `interval_s` one line
    gives the last of them and how many were held. After a quiet interval the burst
    is allowed again. Call `flush()` now and then while `held` is non-zero, so a
    flood that stopped is still counted.
    """

    def __init__(self, logger: logging.Logger, burst: int = THROTTLE_BURST,
                 interval_s: float = THROTTLE_INTERVAL_S, clock=time.monotonic):
        self._log, self._burst, self._interval, self._clock = logger, burst, interval_s, clock
        self._left = burst  # lines still allowed before warnings are held
        self._last = -math.inf  # when the last warning came, logged or held
        self._due = -math.inf  # when the held ones are counted in a line
        self.held = 0  # warnings held since the last line
        self._held_since = 0.0
        self._last_held: tuple[str, tuple] = ("", ())

    def warning(self, msg: str, *args) -> None:
        """Log `msg % args` as a warning, or hold and count it."""
        now = self._clock()
        if now - self._last >= self._interval:  # quiet for a whole interval: the flood is over
            self.flush(force=True)
            self._left = self._burst
        self._last = now
        if self._left > 0:
            self._left -= 1
            self._log.warning(msg, *args)
            self._due = now + self._interval
            return
        if not self.held:
            self._held_since = now
        self.held += 1
        self._last_held = (msg, args)
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Log the count of held warnings if their interval is over (or `force`)."""
        if not self.held or not (force or self._clock() >= self._due):
            return
        msg, args = self._last_held
        self._log.warning("%s [%d more like it over %.0f s, not logged]", msg % args if args else msg,
                          self.held, self._last - self._held_since)
        self.held = 0
        self._due = self._clock() + self._interval
