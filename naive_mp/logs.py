"""Log set-up shared by every command: one line per event, to stderr (and a file)."""

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO, file: str | None = None) -> None:
    """Log at `level` to stderr, and to `file` too when given."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        handlers.append(logging.FileHandler(file))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
