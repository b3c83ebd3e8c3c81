"""The files a download writes: the locked ``.part`` it grows in, and the ``.CHECKSUM`` beside a tape.

Nothing here speaks HTTP; :mod:`naive_mp.data.download` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
from pathlib import Path
from typing import BinaryIO


class PartFileBusy(Exception):
    """Another process holds the ``.part`` file (or has just finished it)."""


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_checksum(final: Path, digest: str) -> None:
    """Keep the archive's ``.CHECKSUM`` beside the tape, so it can be checked offline too."""
    path = final.with_name(final.name + ".CHECKSUM")
    line = f"{digest}  {final.name}\n"
    if path.exists() and path.read_text(errors="replace") == line:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(line)
    os.replace(tmp, path)


def take_broken(final: Path, target: PartFile) -> None:
    """Move a broken tape out of its name, keeping its bytes in `target` if they are more.

    A broken tape is most often a truncated one: its bytes are a prefix worth
    resuming from (the checksum catches it if they are not).  They are copied,
    not renamed, because `target` is the locked file other downloads respect.
    """
    if final.stat().st_size > target.size():
        target.restart()
        with open(final, "rb") as broken:
            while chunk := broken.read(1 << 20):
                target.append(chunk)
    final.unlink()


@dataclasses.dataclass
class PartFile:
    """The ``.part`` file a download goes to, open unbuffered, locked against a second download."""

    path: Path
    file: BinaryIO
    resumed_from: int = 0  # where the bytes kept from before end, if they were kept

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path):
        """Open (or create) `path` for appending, holding an exclusive lock while in use."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+b", buffering=0) as file:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PartFileBusy(f"{path} is being downloaded by another process; "
                                    "run again when it is done") from None
            # Between our open and our lock, another download may have renamed
            # this very file into place: then it is no .part any more.
            if not _names(path, fd):
                raise PartFileBusy(f"{path} was finished by another process meanwhile; run again")
            file.seek(0, os.SEEK_END)
            try:
                yield cls(path, file)
            finally:
                # An empty .part helps no later run: leave no litter.
                if os.fstat(fd).st_size == 0 and _names(path, fd):
                    path.unlink()

    def append(self, data: bytes) -> None:
        """Write all of `data` at the end (an unbuffered write may take only part of it)."""
        view = memoryview(data)
        while view:
            view = view[self.file.write(view):]

    def size(self) -> int:
        """Bytes in the file now."""
        return os.fstat(self.file.fileno()).st_size

    def restart(self) -> None:
        """Drop every byte: the next ones are the file's first."""
        self.file.seek(0)
        self.file.truncate()
        self.resumed_from = 0

    def digest(self) -> str:
        """Hex SHA-256 of the bytes so far."""
        self.file.seek(0)
        digest = hashlib.file_digest(self.file, "sha256").hexdigest()
        self.file.seek(0, os.SEEK_END)
        return digest


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
