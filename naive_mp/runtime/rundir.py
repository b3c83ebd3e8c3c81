"""The run directory: sockets, the supervisor's pid lock, the log and the run's result files.

It is private to its user (mode 0700): anyone who can reach the sockets can
place orders. One supervisor per run directory, enforced by an flock on
`supervisor.pid`, because binding an ipc path another process already bound
silently steals it.
"""

import errno
import fcntl
import os
import time
from pathlib import Path

PID_FILE = "supervisor.pid"
LOG_FILE = "naive-mp.log"
ORDERS_FILE = "orders.csv"  # written by the gateway when it stops (backtest's --orders-out format)
SUMMARY_FILE = "summary.json"  # written by the gateway when it stops (backtest's --json, no elapsed_s)

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


def prepare_run_dir(path: str | os.PathLike) -> Path:
    """Create the run directory (mode 0700) or make an existing one of ours 0700; its absolute path."""
    run_dir = Path(path).expanduser().absolute()
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = run_dir.stat()
    except OSError as exc:
        raise RunDirError(f"cannot create the run directory {run_dir}: {exc.strerror}") from None
    if not run_dir.is_dir():
        raise RunDirError(f"the run directory {run_dir} is not a directory")
    if info.st_uid != os.getuid():
        raise RunDirError(f"the run directory {run_dir} belongs to another user (uid {info.st_uid}); "
                          "choose another with --run-dir or NAIVE_MP_RUN_DIR")
    if info.st_mode & 0o777 != 0o700:
        run_dir.chmod(0o700)
    if len(str(run_dir / LONGEST_SOCKET)) > IPC_PATH_MAX:
        raise RunDirError(f"the run directory path {run_dir} is too long for ipc sockets "
                          f"(at most {IPC_PATH_MAX - len(LONGEST_SOCKET) - 1} characters)")
    return run_dir


def remove_sockets(run_dir: str | os.PathLike) -> list[Path]:
    """Remove leftover `*.sock` files (only safe while holding the pid lock); the removed paths."""
    removed = []
    for sock in Path(run_dir).glob("*.sock"):
        try:
            sock.unlink()
            removed.append(sock)
        except FileNotFoundError:
            pass
    return removed


def read_pid(run_dir: str | os.PathLike) -> int | None:
    """The pid written in the pid file, if any (it may be stale)."""
    try:
        return int((Path(run_dir) / PID_FILE).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def supervisor_pid(run_dir: str | os.PathLike) -> int | None:
    """The pid of the supervisor running on `run_dir`, or None when none holds the lock."""
    path = Path(run_dir) / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
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

    Raises AlreadyRunning when another supervisor holds it. Held as a raw
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
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
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
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
