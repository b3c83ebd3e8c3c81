"""Log set-up shared by every command: one line per event, to stderr (and a file)."""

import logging
import os
import sys

# Log levels by the names the pure core uses in its Notice commands.
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Many processes share one log file: each line names its process ("[leader XRPUSDT 1234]").
PROCESS_FORMAT = "%(asctime)s %(levelname)-7s [%(proc)s %(process)d] %(name)s: %(message)s"

_process_name = "naive-mp"


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


class PrivateFileHandler(logging.FileHandler):
    """A FileHandler whose file is private (0600) and never opened through a symlink (OSError ELOOP)."""

    def _open(self):
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,
                    opener=_private_opener)


def setup_logging(level: int = logging.INFO, file: str | None = None, process: str | None = None) -> None:
    """Log at `level` to stderr, and to `file` too when given.

    With `process` (e.g. "supervisor"), every line names the process and its pid.
    The file is private (PrivateFileHandler); raises OSError when it cannot be opened.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        handlers.append(PrivateFileHandler(file))
    fmt = FORMAT
    if process is not None:
        set_process_name(process)
        fmt = PROCESS_FORMAT
        for handler in handlers:
            handler.addFilter(_ProcessName())
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)
