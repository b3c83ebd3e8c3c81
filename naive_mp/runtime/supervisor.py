"""The supervisor: gunicorn's arbiter loop over the run's child processes.

Signal handlers only record the signal (and wake the poll through the wakeup
fd). The loop polls the control socket, dispatches the signals, reaps the
children, kills the stale ones and converges to the wanted set, restarting
the dead under the policy of naive_mp.runtime.children (a child's first
heartbeat is its hello). SIGTERM, SIGINT, a StopRequest and the end of a
replay all run the same shutdown path: streamer, then leaders, then the
gateway last (it writes the run's final files when told to stop).
"""

import contextlib
import importlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import msgspec
import zmq

from naive_mp.logs import ProgressLine, setup_logging
from naive_mp.runtime import children as kids
from naive_mp.runtime import rundir
from naive_mp.runtime.control import ControlServer
from naive_mp.runtime.process import (EXIT_GAVE_UP, BootError, become_subreaper, child_pids, describe_exit,
                                      fork_child, set_title)
from naive_mp.wire import (Heartbeat, ProcessInfo, ReloadReply, ReloadRequest, RunSpec, StatusReply, StatusRequest,
                           StopReply, StopRequest)

log = logging.getLogger("naive_mp.supervisor")

POLL_S = 0.2
KILL_WAIT_S = 5.0  # after SIGKILL, the kernel needs only moments
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
SHUTDOWN_RANK = {"streamer": 0, "leader": 1, "gateway": 3}  # any other role: 2
ROLE_MODULES = ("naive_mp.runtime.gateway", "naive_mp.runtime.leader", "naive_mp.runtime.streamer")


@dataclass(frozen=True)
class ChildSpec:
    """One wanted child: built before the fork, with no side effects."""

    name: str  # unique in the run: "gateway", "leader-XRPUSDT", "streamer"
    role: str  # streamer, gateway, leader (or anything, for tests)
    symbol: str | None
    title: str  # process title after "naive-mp: "
    body: Callable[[], "int | None"]  # runs in the child; its return value is the exit status
    keep_fds: tuple[int, ...] = ()  # inherited descriptors it keeps (the live gateway: its API keys)


def _role_body(module: str, *args) -> "int | None":
    try:
        role = importlib.import_module(module)
    except ImportError as exc:
        raise BootError(f"cannot import {module}: {exc}") from None
    from naive_mp.store import StoreError
    try:
        return role.run(*args)
    except StoreError as exc:  # the state database cannot be used: restarting at once would not help
        raise BootError(str(exc)) from None


def default_children(spec: RunSpec) -> list[ChildSpec]:
    """The gateway, one leader per symbol, and the streamer last (it starts the trades flowing)."""
    wanted = [ChildSpec("gateway", "gateway", None, f"gateway {_gateway_kind(spec)}",
                        lambda: _role_body("naive_mp.runtime.gateway", spec), keep_fds=_keys_fd(spec))]
    for symbol in spec.symbols:
        wanted.append(ChildSpec(f"leader-{symbol}", "leader", symbol, f"leader {symbol}",
                                lambda symbol=symbol: _role_body("naive_mp.runtime.leader", spec, symbol)))
    wanted.append(ChildSpec("streamer", "streamer", None, "streamer",
                            lambda: _role_body("naive_mp.runtime.streamer", spec)))
    return wanted


def _gateway_kind(spec: RunSpec) -> str:
    if not spec.live:
        return "paper"
    return "testnet" if spec.testnet else "live"


def _keys_fd(spec: RunSpec) -> tuple[int, ...]:
    """Only the live gateway keeps the descriptor the API keys were handed off in; every other child closes it."""
    if not spec.live:
        return ()
    from naive_mp.exchange.secrets import handoff_fd
    fd = handoff_fd(os.environ)
    return (fd,) if fd is not None else ()


@dataclass
class Child:
    """What the supervisor knows about one wanted child, across its restarts."""

    spec: ChildSpec
    pid: int | None = None
    started_at: float = 0.0  # wall clock, for status
    started_mono: float = 0.0
    last_beat: float | None = None  # None: no heartbeat yet from this process (no hello)
    beat: Heartbeat | None = None
    spawned: int = 0
    restarts: int = 0
    boot_failures: int = 0  # died before its first heartbeat, so many times in a row
    next_start: float = 0.0
    killed: bool = False  # already SIGKILLed as stale
    done: bool = False  # exited 0: its work is over, not restarted


class Supervisor:
    """The arbiter of one run: `Supervisor(spec).run()` returns the run's exit status."""

    def __init__(self, spec: RunSpec, children: Iterable[ChildSpec] | None = None, *,
                 grace_s: float = 10.0, stale_s: float = 10.0, boot_grace_s: float = 10.0,
                 before_start: Callable[[Path], None] | None = None):
        wanted = list(children) if children is not None else default_children(spec)
        names = [c.name for c in wanted]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self.spec = spec
        self.children = [Child(c) for c in wanted]
        self.grace_s, self.stale_s, self.boot_grace_s = grace_s, stale_s, boot_grace_s
        self.before_start = before_start
        self.progress_line = ProgressLine(sys.stderr)
        self._preload = children is None
        self._signals: list[int] = []
        self._old_handlers: dict[int, object] = {}
        self._wake_r = self._wake_w = -1
        self._old_wakeup = -1
        self._stop_status: int | None = None
        # What children gave up on (status rows, or a name from an exit status): kept, and the run fails.
        self.given_up: dict[str, ProcessInfo | None] = {}
        self._hurry = False
        self.started_at = time.time()
        self.context: zmq.Context | None = None
        self.control: ControlServer | None = None
        self.poller = zmq.Poller()

    # -- the run --------------------------------------------------------------

    def run(self) -> int:
        """Lock the run directory, fork the children, supervise until stopped; the exit status.

        Raises rundir.RunDirError (AlreadyRunning among them) before anything starts.
        """
        with rundir.private_files():  # the children inherit the umask: their files and sockets too
            run_dir = rundir.prepare_run_dir(self.spec.run_dir)
            lock = rundir.PidLock(run_dir)
            try:
                return self._run_locked(run_dir)
            finally:
                lock.release()

    def _run_locked(self, run_dir: Path) -> int:
        set_title("supervisor")
        log_file = rundir.log_path(run_dir)
        try:
            setup_logging(self.spec.log_level, str(log_file), process="supervisor", log_format=self.spec.log_format)
        except OSError as exc:
            raise rundir.RunDirError(rundir.cannot_open(log_file, exc)) from None
        become_subreaper()
        rundir.remove_sockets(run_dir)  # leftovers of a killed run: we hold the lock now
        if self.before_start:
            self.before_start(run_dir)
        self._preload_roles()
        self._install_signals()
        log.info("supervisor started on %s (pid %d)", run_dir, os.getpid())
        try:
            self._spawn_due()  # fork the first children before zmq starts its threads
            self._open_control(run_dir)
            self._loop()
        except BaseException:
            log.exception("supervisor crashed; stopping everything")
            self._stop_status = 1
        finally:
            self._shutdown()
            self._close(run_dir)
        log.info("supervisor stopped (exit status %d)", self._stop_status)
        return self._stop_status

    def _preload_roles(self) -> None:
        # Imported once here, the role modules' pages are shared by every child.
        for module in ROLE_MODULES if self._preload else ():
            try:
                importlib.import_module(module)
            except Exception as exc:  # the child will say it cannot boot
                log.debug("cannot preload %s: %s", module, exc)

    def _loop(self) -> None:
        while self._stop_status is None:
            self._poll(self._poll_timeout())
            self._dispatch_signals()
            self._reap()
            if self._stop_status is not None:
                break
            self._kill_stale()
            self._spawn_due()
            if self.spec.progress:
                self.progress_line.draw(self._replay_state())
            if all(child.done for child in self.children):
                self._request_stop(0, "every process finished its work")

    def _replay_state(self) -> str | None:
        streamer = next((c for c in self.children if c.spec.role == "streamer"), None)
        beat = streamer.beat if streamer is not None else None
        return f"replay: {beat.process.state}" if beat is not None else None

    def _poll_timeout(self) -> float:
        now = time.monotonic()
        due = [c.next_start - now for c in self.children if c.pid is None and not c.done]
        return max(0.01, min([POLL_S, *due]))

    def _request_stop(self, status: int, why: str) -> None:
        if self._stop_status is None:
            self._stop_status = status
            (log.info if status == 0 else log.error)("stopping the run: %s", why)

    # -- signals: handlers only record ------------------------------------------

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        self.poller.register(self._wake_r, zmq.POLLIN)

    def _on_signal(self, signum, frame) -> None:
        if signum not in self._signals:
            self._signals.append(signum)

    def _dispatch_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self._stop_status is not None:
                    log.warning("%s again: killing what is left now", name)
                    self._hurry = True
                self._request_stop(0, f"{name} received")
            elif signum == signal.SIGHUP:
                self.reload("settings")
            # SIGCHLD: only wakes the loop, which reaps on every turn

    def _poll(self, timeout_s: float) -> None:
        events = dict(self.poller.poll(int(timeout_s * 1000)))
        if self._wake_r in events:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass
        if self.control is not None and self.control.socket in events:
            self._serve_control()

    # -- children: reap, kill the stale, converge -----------------------------

    def _by_pid(self, pid: int) -> Child | None:
        return next((c for c in self.children if c.pid == pid), None)

    def _reap(self) -> None:
        for pid, code in kids.reap():
            child = self._by_pid(pid)
            if child is not None:  # else an orphan, adopted from a dead leader: reaped, nothing more
                self._exited(child, code)

    def _exited(self, child: Child, code: int) -> None:
        ran = time.monotonic() - child.started_mono
        how = (log.info if code == 0 or self._stop_status is not None else log.warning)
        how("%s (pid %d) %s after %.1f s", child.spec.name, child.pid, describe_exit(code), ran)
        if code == EXIT_GAVE_UP and not any(p and p.symbol == child.spec.symbol for p in self.given_up.values()):
            self.given_up[f"a trader of {child.spec.name}"] = None  # the beat that named it was lost
        said_hello = child.last_beat is not None
        child.pid, child.beat, child.last_beat = None, None, None
        if self._stop_status is not None:
            return
        # Only the streamer's work can be over (its tapes are). A gateway or leader
        # that exits 0 was told to stop by someone else (a SIGTERM from htop, say):
        # trading of its symbols must go on, so it comes back like a crashed one.
        if code == 0 and child.spec.role == "streamer":
            child.done = True
            if self.spec.exit_at_end:
                self._request_stop(0, "the replay is over")
            else:
                log.info("%s finished its work: not restarting it", child.spec.name)
            return
        verdict = kids.RESTARTS.after_death(child.boot_failures, said_hello)
        child.boot_failures = verdict.failures
        if verdict.gave_up:  # without its streamer, gateway or a leader the run cannot go on
            why = f"it could not boot {verdict.failures} times in a row (it died before its first heartbeat)"
            return self._request_stop(1, f"giving up on {child.spec.name}: {why}; its log lines above say why")
        child.next_start = time.monotonic() + verdict.delay_s
        log.info("restarting %s in %.1f s", child.spec.name, verdict.delay_s)

    def _kill_stale(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.pid is None or child.killed or not kids.is_stale(
                    now, child.started_mono, child.last_beat, stale_s=self.stale_s, boot_grace_s=self.boot_grace_s):
                continue
            log.error("%s (pid %d) sent no heartbeat for %.1f s: killing it", child.spec.name, child.pid,
                      now - (child.last_beat or child.started_mono))
            kids.send_signal(child.pid, signal.SIGKILL)
            child.killed = True

    def _spawn_due(self) -> None:
        for child in self.children:
            if child.pid is None and not child.done and time.monotonic() >= child.next_start:
                self._spawn(child)

    def _spawn(self, child: Child) -> None:
        try:
            pid = fork_child(child.spec.title, child.spec.body, keep_fds=child.spec.keep_fds)
        except OSError as exc:
            log.error("cannot fork %s: %s; trying again in 1 s", child.spec.name, exc)
            child.next_start = time.monotonic() + 1.0
            return
        child.restarts = child.spawned
        child.spawned += 1
        child.pid, child.killed = pid, False
        child.started_at, child.started_mono = time.time(), time.monotonic()
        again = f", restart {child.restarts}" if child.restarts else ""
        log.info("started %s (pid %d%s)", child.spec.name, pid, again)

    # -- the control socket --------------------------------------------------

    def _open_control(self, run_dir: Path) -> None:
        if self.spec.metrics_addr:
            from naive_mp.runtime import metrics
            metrics.serve(self.spec.metrics_addr, lambda: metrics.supervised_samples(self.children))
        self.context = zmq.Context()
        self.control = ControlServer(run_dir, self.context)
        self.poller.register(self.control.socket, zmq.POLLIN)

    def _serve_control(self) -> None:
        for envelope, message in self.control.receive():
            try:
                reply = self._handle(message)
            except Exception:  # a control message must never take the supervisor down
                log.exception("control message %s failed, dropped", type(message).__name__)
                continue
            if reply is not None:
                self.control.reply(envelope, reply)

    def _handle(self, message):
        if isinstance(message, Heartbeat):
            child = self._by_pid(message.process.pid)
            if child is not None:
                child.beat, child.last_beat = message, time.monotonic()
            for sub in message.children:
                if sub.state == kids.GAVE_UP:
                    self.given_up[f"{sub.symbol}#{sub.trader_id}"] = sub
            return None
        if isinstance(message, StatusRequest):
            return self.status()
        if isinstance(message, StopRequest):
            self._request_stop(0, "stop requested")
            return StopReply(pid=os.getpid())
        if isinstance(message, ReloadRequest):
            return ReloadReply(leaders=self.reload(message.what))
        raise TypeError(f"unexpected {type(message).__name__} on the control socket")

    def reload(self, what: str) -> int:
        """Have every leader read its settings (SIGHUP) or trading status (SIGUSR1) from the store."""
        signum = {"settings": signal.SIGHUP, "trading": signal.SIGUSR1}.get(what)
        if signum is None:
            raise ValueError(f"nothing called {what!r} to reload")
        leaders = [c for c in self.children if c.spec.role == "leader" and c.pid is not None]
        for child in leaders:
            kids.send_signal(child.pid, signum)
        log.info("reload of %s: told %d leaders", what, len(leaders))
        return len(leaders)

    def status(self) -> StatusReply:
        """Every running process: children as their heartbeats describe them, a leader's traders after it."""
        processes = []
        for child in self.children:
            if child.pid is None:
                continue
            base = child.beat.process if child.beat else ProcessInfo(role=child.spec.role, pid=child.pid,
                                                                     state="starting")
            processes.append(msgspec.structs.replace(
                base, role=child.spec.role, pid=child.pid, symbol=base.symbol or child.spec.symbol,
                restarts=child.restarts, started_at=child.started_at))
            for sub in child.beat.children if child.beat else ():
                if sub.state != kids.GAVE_UP:  # those are listed from self.given_up, even after a restart
                    processes.append(sub if sub.role else msgspec.structs.replace(sub, role="trader"))
        processes += [p for p in self.given_up.values() if p is not None]
        state = "running" if self._stop_status is None else "stopping"
        me = ProcessInfo(role="supervisor", pid=os.getpid(), state=state, started_at=self.started_at)
        return StatusReply(supervisor=me, processes=processes)

    # -- shutdown: one path for every way a run ends ------------------------

    def _shutdown(self) -> None:
        if self._stop_status is None:
            self._stop_status = 1
        for rank in sorted({SHUTDOWN_RANK.get(c.spec.role, 2) for c in self.children}):
            group = [c for c in self.children if SHUTDOWN_RANK.get(c.spec.role, 2) == rank and c.pid]
            if group:
                self._stop_group(group)
        self._reap_orphans()
        if self.given_up and self._stop_status == 0:
            self._stop_status = 1
            log.error("the run failed: gave up on %s (the log lines above say why)", ", ".join(sorted(self.given_up)))

    def _stop_group(self, group: list[Child]) -> None:
        log.info("stopping %s", ", ".join(f"{c.spec.name} (pid {c.pid})" for c in group))
        for child in group:
            kids.send_signal(child.pid, signal.SIGTERM)
        if self._wait_gone(group, self.grace_s):
            return
        for child in group:
            if child.pid is not None:
                log.warning("%s (pid %d) still running after %g s: killing it", child.spec.name, child.pid, self.grace_s)
                kids.send_signal(child.pid, signal.SIGKILL)
        self._wait_gone(group, KILL_WAIT_S, hurry=False)

    def _wait_gone(self, group: list[Child], timeout_s: float, hurry: bool = True) -> bool:
        deadline = time.monotonic() + timeout_s
        while any(c.pid is not None for c in group):
            left = deadline - time.monotonic()
            if left <= 0 or (hurry and self._hurry):
                return False
            self._poll(min(0.05, left))  # keeps answering status and stop while waiting
            self._dispatch_signals()
            self._reap()
        return True

    def _reap_orphans(self) -> None:
        """Reap (then kill) descendants adopted as subreaper, so nothing outlives the run."""
        self._reap()
        # Orphans die with their parent (PDEATHSIG): a moment to see them go, then no mercy.
        for pid in kids.stop_or_kill(child_pids(), 2.0, KILL_WAIT_S):
            log.warning("pid %d was still running at the end: killed it", pid)

    def _close(self, run_dir: Path) -> None:
        self.progress_line.clear()
        if self.control is not None:
            self.poller.unregister(self.control.socket)
            self.control.close()
            self.context.term()
            self.control = self.context = None
        signal.set_wakeup_fd(self._old_wakeup)
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        rundir.remove_sockets(run_dir)

