"""Log set-up shared by every command: one line per event, to stderr (and a file)."""

import logging
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


def setup_logging(level: int = logging.INFO, file: str | None = None, process: str | None = None) -> None:
    """Log at `level` to stderr, and to `file` too when given.

    With `process` (e.g. "supervisor"), every line names the process and its pid.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        handlers.append(logging.FileHandler(file))
    fmt = FORMAT
    if process is not None:
        set_process_name(process)
        fmt = PROCESS_FORMAT
        for handler in handlers:
            handler.addFilter(_ProcessName())
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)
