"""The run directory: sockets, the supervisor's pid lock, the log and the run's result files.

It is private to its user (mode 0700): anyone who can reach the sockets can
place orders. One supervisor per run directory, enforced by an flock on
`supervisor.pid`, because binding an ipc path another process already bound
silently steals it.

What `start` accepts as a run directory (prepare_run_dir): a new directory
(created 0700), or an existing one that is ours (our uid), not a symlink, that
nobody else can write to (else links could have been planted in it), that we
can write to, and that is empty or holds a naive-mp run: one of `state.db`,
`supervisor.pid` or `naive-mp.log` as a regular file. Other files beside the
run are left alone. An existing directory of ours only ever loses permissions
(0755 becomes 0700); it is never made writable. Inside it nothing is opened
through a symlink (O_NOFOLLOW), and only our own sockets are ever removed.
"""

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from pathlib import Path

PID_FILE = "supervisor.pid"
LOG_FILE = "naive-mp.log"
ORDERS_FILE = "orders.csv"  # written by the gateway when it stops (backtest's --orders-out format)
SUMMARY_FILE = "summary.json"  # written by the gateway when it stops (backtest's --json, no elapsed_s)
DB_FILE = "state.db"  # store.schema.DB_FILE (not imported: the CLI's status stays light)

# A non-empty directory holding none of these (as a regular file) is not a run directory.
MARKERS = (DB_FILE, PID_FILE, LOG_FILE)
# The sockets the run binds (wire.address): only these are ever removed.
SOCKET_NAMES = frozenset(f"{name}.sock" for name in ("control", "gateway", "updates", "trades", "acks"))
LEADER_SOCKET = re.compile(r"leader-[A-Za-z0-9]{1,20}\.sock")

IPC_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
LONGEST_SOCKET = "leader-" + "X" * 20 + ".sock"


class RunDirError(Exception):
    """The run directory cannot be used; the message says why and what to do."""


class AlreadyRunning(RunDirError):
    """Another supervisor holds the run directory's pid lock."""

    def __init__(self, run_dir: Path, pid: int | None):
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"another naive-mp supervisor ({who}) runs on {run_dir}; "
                         f"stop it with `naive-mp stop --run-dir {run_dir}`")
        self.pid = pid


def default_run_dir() -> Path:
    """$NAIVE_MP_RUN_DIR, else $XDG_RUNTIME_DIR/naive-mp, else ~/.local/state/naive-mp/run."""
    if os.environ.get("NAIVE_MP_RUN_DIR"):
        return Path(os.environ["NAIVE_MP_RUN_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "naive-mp"
    return Path.home() / ".local" / "state" / "naive-mp" / "run"


def log_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / LOG_FILE


def leader_result_file(run_dir: str | os.PathLike, symbol: str) -> Path:
    """Where the leader of `symbol` writes `{"max_traders": N}` when it stops."""
    return Path(run_dir) / f"leader-{symbol}.json"


@contextlib.contextmanager
def private_files():
    """Whatever this process (and what it forks meanwhile) creates is for this user only: umask 077.

    Whatever the caller's umask: under 000 the log was 0666 and the sockets 0777.
    """
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def prepare_run_dir(path: str | os.PathLike) -> Path:
    """Create the run directory (0700), or check an existing one (see the module's doc); its absolute path.

    Raises RunDirError saying why the directory is refused and what to do.
    """
    run_dir = Path(path).expanduser().absolute()
    if len(str(run_dir / LONGEST_SOCKET)) > IPC_PATH_MAX:
        raise RunDirError(f"the run directory path {run_dir} is too long for ipc sockets "
                          f"(at most {IPC_PATH_MAX - len(LONGEST_SOCKET) - 1} characters)")
    created = _create(run_dir)
    fd = _open_dir(run_dir)
    try:
        if created:  # ours for sure: whatever the umask, private
            os.fchmod(fd, 0o700)
        info = os.fstat(fd)
        _check_owner_and_mode(run_dir, info)
        if not created:
            _check_holds_a_run(run_dir, fd)
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise RunDirError(f"the run directory {run_dir} is not writable (mode {stat.S_IMODE(info.st_mode):04o}): "
                              f"make it writable with `chmod 700 {run_dir}`, or choose another with --run-dir")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)  # only takes read/search away from others: nobody else wrote in it
    finally:
        os.close(fd)
    return run_dir


def _create(run_dir: Path) -> bool:
    """Create `run_dir` (0700; its parents as the umask says); True when we did, False when it exists."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(mode=0o700)
    except FileExistsError:
        return False
    except OSError as exc:
        raise RunDirError(f"cannot create the run directory {run_dir}: {exc.strerror}") from None
    return True


def _open_dir(run_dir: Path) -> int:
    """A descriptor of the directory itself, never of what a symlink points to."""
    if run_dir.is_symlink():
        raise RunDirError(f"the run directory {run_dir} is a symbolic link, which naive-mp does not follow: "
                          f"give the directory itself with --run-dir (it points to {os.path.realpath(run_dir)})")
    try:
        return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a file, or a symlink swapped in meanwhile
            raise RunDirError(f"the run directory {run_dir} is not a directory") from None
        raise RunDirError(f"cannot open the run directory {run_dir}: {exc.strerror}") from None


def _check_owner_and_mode(run_dir: Path, info: os.stat_result) -> None:
    if info.st_uid != os.geteuid():
        raise RunDirError(f"the run directory {run_dir} belongs to another user (uid {info.st_uid}); "
                          "choose another with --run-dir or NAIVE_MP_RUN_DIR")
    writers = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if info.st_mode & bit]
    if writers:
        raise RunDirError(f"the run directory {run_dir} is writable by {' and '.join(writers)} "
                          f"(mode {stat.S_IMODE(info.st_mode):04o}): anyone there could have planted files or links "
                          f"in it. Check what it holds, then make it private with `chmod 700 {run_dir}`, "
                          "or choose another with --run-dir")


def _check_holds_a_run(run_dir: Path, fd: int) -> None:
    """Refuse to fill (and clean) a non-empty directory that is not a run directory, such as a home."""
    with os.scandir(fd) as entries:
        names = {entry.name: entry.is_file(follow_symlinks=False) for entry in entries}
    if names and not any(names.get(marker) for marker in MARKERS):
        raise RunDirError(f"{run_dir} is not empty and holds no naive-mp run (none of {', '.join(MARKERS)}): "
                          "naive-mp will not fill another directory; choose an empty or new one with --run-dir")


def is_our_socket(name: str) -> bool:
    """True for the name of a socket the run binds in its directory."""
    return name in SOCKET_NAMES or LEADER_SOCKET.fullmatch(name) is not None


def remove_sockets(run_dir: str | os.PathLike) -> list[Path]:
    """Remove our leftover sockets (only safe while holding the pid lock); the removed paths.

    Only our socket names, and only sockets: a regular file, a symlink or
    another program's socket is left alone.
    """
    removed = []
    with os.scandir(run_dir) as entries:
        for entry in entries:
            try:
                if is_our_socket(entry.name) and stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except FileNotFoundError:
                pass
    return removed


def cannot_open(path: Path, exc: OSError) -> str:
    """Why a file of the run directory cannot be opened, said for a person."""
    if exc.errno == errno.ELOOP:
        return (f"{path} is a symbolic link: naive-mp never opens a file of its run directory through one; "
                "remove it (and check who put it there)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot open {path}: {exc.strerror} (left by another user, a run as root? remove it)"
    return f"cannot open {path}: {exc.strerror}"


def _open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, mode)


def read_pid(run_dir: str | os.PathLike) -> int | None:
    """The pid written in the pid file, if any (it may be stale)."""
    try:
        fd = _open_nofollow(Path(run_dir) / PID_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        return int(os.read(fd, 64).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def supervisor_pid(run_dir: str | os.PathLike) -> int | None:
    """The pid of the supervisor running on `run_dir`, or None when none holds the lock."""
    path = Path(run_dir) / PID_FILE
    try:
        fd = _open_nofollow(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_pid(run_dir) or 0
    else:
        return None  # nobody holds it: a leftover of a killed run
    finally:
        os.close(fd)  # also drops the shared lock at once


class PidLock:
    """An exclusive flock on RUN_DIR/supervisor.pid, holding this process's pid.

    Raises AlreadyRunning when another supervisor holds it, RunDirError when the
    file cannot be opened (a symlink is never followed). Held as a raw
    descriptor so a forked child can close it without a Python object around.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / PID_FILE
        self.fd = self._acquire()
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def _acquire(self, attempts: int = 5) -> int:
        for _ in range(attempts):
            try:
                fd = _open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
            except OSError as exc:
                raise RunDirError(cannot_open(self.path, exc)) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                # `status` probes the lock for an instant with LOCK_SH: look again before refusing.
                time.sleep(0.02)
                continue
            if self._same_file(fd):
                return fd
            os.close(fd)  # locked a file its old owner just removed: start over
        raise AlreadyRunning(self.run_dir, read_pid(self.run_dir))

    def _same_file(self, fd: int) -> bool:
        try:
            return os.lstat(self.path).st_ino == os.fstat(fd).st_ino
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise

    def release(self) -> None:
        """Remove the pid file, then unlock (in that order, so no newcomer's file is removed)."""
        if self.fd < 0:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = -1
