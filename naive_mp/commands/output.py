"""The files a command writes for its user (--orders-out, --report, --png): checked first, written safely.

What a target is decides how it is written:

- `-` is standard output.
- A regular file, or a new one, is replaced atomically: the text goes to a
  temporary file beside it, synced, then renamed over it, so a reader sees
  the old file or the whole new one, never a part. It gets the mode a plain
  `open()` would give it, 0666 less the umask (not mkstemp's 0600).
- A symlink is followed: its target is replaced as above and the link stays
  a link (a dangling link creates its target).
- Anything else that exists is written in place: a device (/dev/null,
  /dev/full, a terminal) or a FIFO. Renaming over it would replace the
  device node or the pipe with a plain file, and the pipe's reader would get
  nothing. Such a write is not atomic, and a FIFO waits for its reader, as
  with any program writing to one.

A failure (ENOSPC on /dev/full, a folder that cannot be written, /proc) is a
click error naming the option and the file, never a traceback.
"""

import os
import stat
import sys
import tempfile
from pathlib import Path

import click

STDOUT = "-"


def check_output(path: str | None, option: str = "--orders-out") -> None:
    """Refuse, before any work (exit 2), an output file that cannot be written."""
    problem = None if path is None or path == STDOUT else _problem(path)
    if problem:
        raise click.BadParameter(problem, param_hint=option)


def write_output(path: str, text: str | bytes, option: str = "--orders-out") -> None:
    """Write `text` (or bytes: a PNG) to the output file `path` as its kind asks (see the module); exit 1 on failure."""
    try:
        if path == STDOUT:
            out = sys.stdout.buffer if isinstance(text, bytes) else sys.stdout
            out.write(text)
            out.flush()
        elif _is_special(path):
            _write_in_place(path, text)
        else:
            _replace_atomically(Path(os.path.realpath(path)), text)
    except OSError as exc:
        raise click.ClickException(f"{option}: cannot write {path}: {exc.strerror or exc}") from None


def _is_special(path: str) -> bool:
    """True for an existing target that is not a regular file (after following symlinks)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:  # new, or a dangling symlink: a regular file will be created
        return False


def _problem(path: str) -> str | None:
    """Why `path` cannot be written, found without touching it (None: it can)."""
    try:
        special = _is_special(path)
    except OSError as exc:
        return f"cannot reach {path}: {exc.strerror}"
    if special:
        if os.path.isdir(path):
            return f"{path} is a folder"
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    # Only creating a file proves it can be done: os.access says yes to root
    # everywhere, /proc included.
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".naive-mp-check.")
    except OSError as exc:
        return f"cannot create {path}: no new file can be made in folder {folder} ({exc.strerror})"
    os.close(fd)
    os.unlink(tmp)
    return None


def _opening(text: str | bytes) -> dict:
    """open()'s mode for text (newlines as given) or for bytes."""
    return {"mode": "wb"} if isinstance(text, bytes) else {"mode": "w", "newline": ""}


def _write_in_place(path: str, text: str | bytes) -> None:
    with open(path, **_opening(text)) as f:  # closing flushes: ENOSPC surfaces here at the latest
        f.write(text)


def _replace_atomically(target: Path, text: str | bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, **_opening(text)) as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    # Reading the umask means setting it: put it straight back (commands are single-threaded here).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
