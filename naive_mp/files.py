"""Writing a file of ours whole, for the runtime and the commands alike.

A reader sees the old file or the whole new one, never a half: the text goes
to a temporary file beside the target, is flushed to disk, and is renamed over
it; the folder is synced too, so the rename itself survives a power cut.
(Files a person names on the command line go through commands/output.py,
which also handles `-`, devices and symlinks.)
"""

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text`, all at once and durably."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
