"""Child-process plumbing, gunicorn style: fork, reset, name, run, exit with a named code.

Pre-fork: the caller builds the child's description (title, body) with no
side effects. Post-fork, in the child: signals back to their defaults, the
process title set, death tied to the parent's, every inherited descriptor
closed (the parent's zmq sockets included: a child makes its own
`zmq.Context`), then the body runs and the child leaves through `os._exit`
with one of the exit codes below.
"""

import ctypes
import gc
import logging
import os
import signal
import sys
import traceback
from typing import Callable, Iterable

import setproctitle

from naive_mp import logs

log = logging.getLogger("naive_mp.process")

EXIT_OK = 0
EXIT_CRASH = 1  # an uncaught exception: a bug, the supervisor restarts the child
EXIT_BOOT = 3  # the child could not boot: restarting it at once would not help
EXIT_GAVE_UP = 4  # stopped as told, but gave up on a child of its own on the way: the run failed

TITLE_PREFIX = "naive-mp: "
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# Signals the parent handles itself; a child starts with the defaults, except
# SIGINT: a Ctrl-C in the terminal reaches the whole process group, and the
# supervisor alone must decide the order of the shutdown (gateway last).
RESET_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1)

Body = Callable[[], "int | None"]


class BootError(Exception):
    """Raised by a child's body that cannot start (bad config, socket in use...): exit EXIT_BOOT."""


def set_title(text: str) -> None:
    """Name this process `naive-mp: TEXT` for ps and htop, and tell it apart in top (its comm)."""
    setproctitle.setproctitle(TITLE_PREFIX + text)
    setproctitle.setthreadtitle(short_name(text))


def short_name(title: str) -> str:
    """The kernel's 15 characters for a title: XRPUSDT#7, XRPUSDT leader, nmp gateway."""
    words = title.split()
    if not words:
        return "naive-mp"
    if words[0] == "trader" and len(words) > 1:
        name = words[1]
    elif words[0] == "leader" and len(words) > 1:
        name = f"{words[1]} leader"
    else:
        name = f"nmp {words[0]}"
    return name[:15]


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def die_with_parent(parent_pid: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies.

    `parent_pid` is the parent's pid read before the fork: if the parent
    died before the prctl call, nobody would ever send the signal, so exit now.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(EXIT_CRASH)


def become_subreaper() -> None:
    """Adopt orphaned descendants (a killed leader's traders) so they can be reaped here."""
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError as exc:  # not fatal: PDEATHSIG still kills the orphans
        log.warning("cannot become a child subreaper: %s", exc)


def describe_exit(code: int) -> str:
    """'exited with status N' or 'was killed by SIGNAME', from os.waitstatus_to_exitcode's value."""
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def child_pids() -> list[int]:
    """Pids of this process's children, as the kernel lists them."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def fork_child(title: str, body: Body, *, keep_fds: Iterable[int] = (), log_name: str | None = None) -> int:
    """Fork a child that runs `body()` under the title `naive-mp: TITLE`; returns its pid.

    The child exits with 0 when body returns None (or 0), with body's int
    otherwise, EXIT_BOOT on BootError and EXIT_CRASH on any other exception
    (logged with its traceback first). It never returns into the caller.
    """
    parent = os.getpid()
    gc.freeze()  # objects allocated so far stay out of the collector: pages stay shared
    pid = os.fork()
    if pid:
        gc.unfreeze()  # the parent lives on: its garbage must stay collectable
        return pid
    code = EXIT_CRASH
    try:
        _after_fork(title, parent, keep_fds, log_name or title)
        code = _run_body(body)
    finally:
        _flush_logs()
        os._exit(code)


def _after_fork(title: str, parent: int, keep_fds: Iterable[int], log_name: str) -> None:
    # The wakeup fd belongs to the parent's loop: a signal here must not write to it.
    signal.set_wakeup_fd(-1)
    for signum in RESET_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.set_process_name(log_name)
    set_title(title)
    die_with_parent(parent)
    close_inherited_fds(keep_fds)


def _run_body(body: Body) -> int:
    try:
        code = body()
    except BootError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_BOOT
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_CRASH)
    except BaseException as exc:
        log.critical("crashed: %s: %s", type(exc).__name__, exc)
        _log_traceback()
        return EXIT_CRASH
    return EXIT_OK if code is None else int(code)


def close_inherited_fds(keep_fds: Iterable[int] = ()) -> None:
    """Close every descriptor >= 3 except `keep_fds` and the logging handlers' files.

    Only raw descriptors are closed: the parent's zmq sockets and contexts are
    never touched as objects (pyzmq skips close/term in a forked child).
    """
    keep = set(keep_fds) | _logging_fds()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= 3 and fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor, already gone
                pass


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def _logging_fds() -> set[int]:
    fds = set()
    for handler in _all_handlers():
        stream = getattr(handler, "stream", None)
        try:
            fds.add(stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    return fds


def _log_traceback() -> None:
    """The traceback goes to the log files only: stderr, the user's screen, has the one-line summary."""
    record = log.makeRecord(log.name, logging.CRITICAL, __file__, 0, "traceback of the crash:", (), sys.exc_info())
    files = [h for h in _all_handlers() if isinstance(h, logging.FileHandler)]
    for handler in files:
        handler.handle(record)
    if not files:  # no log file: stderr is the only place left
        traceback.print_exc(file=sys.stderr)


def _flush_logs() -> None:
    for handler in _all_handlers():
        try:
            handler.flush()
        except Exception:  # exiting anyway; a broken log file must not hide the exit code
            pass
