"""The leader process of one symbol: forks one OS process per trader.

It drives the pure leader policy (naive_mp.core.leader): its cache of every
trader's last reported state is what a crashed trader restarts from, with
the same id. Traders report over a ROUTER (each report acked, de-duplicated
by request id); trader deaths arrive as SIGCHLD and are reaped here. In
lockstep, the `Conductor` hands its traders each event in strategy.md's
order. Whether a dead trader restarts, and when, is the restart policy of
naive_mp.runtime.children (a trader's Hello is its hello); one given up on
stays in the status as GAVE_UP and makes this process exit EXIT_GAVE_UP.
"""

import json
import logging
import os
import signal
import time
from pathlib import Path

import zmq
from msgspec.structs import replace

from naive_mp import logs, wire
from naive_mp.backtest.report import write_atomically
from naive_mp.core import leader as core
from naive_mp.core.messages import (Notice, RebuyRequested, StartTrader, SymbolStopped, TraderDied, TraderGivenUp,
                                    TraderReported, TradingStarted)
from naive_mp.core.state import TraderState
from naive_mp.runtime import children as kids
from naive_mp.runtime import trader as trader_process
from naive_mp.runtime.control import ControlLink
from naive_mp.runtime.process import EXIT_GAVE_UP, describe_exit, fork_child, set_title
from naive_mp.runtime.signals import SignalQueue
from naive_mp.runtime.streams import subscriber

log = logging.getLogger("naive_mp.leader")

HEARTBEAT_S = 1.0
STOP_GRACE_S = 5.0
# A trader that has not said Hello after this long is hung: its slowest healthy boot waits 5 s
# for its subscriptions, then asks the gateway about its orders (up to 10 s per question).
TRADER_BOOT_GRACE_S = 30.0
END_DRAIN_S = 2.0


class TraderProc:
    """What the leader knows of one trader process (beyond its cached state)."""

    def __init__(self, pid: int, restarts: int):
        self.pid = pid
        self.started = time.monotonic()
        self.started_at = time.time()
        self.restarts = restarts
        self.hello = False  # said Hello: its boot worked, a death from now on is no boot failure
        self.boot_failures = 0  # this trader's processes that died before their Hello, in a row
        self.heard: float | None = None  # last message of this process once it said Hello (stale check)
        self.killed = False  # SIGKILLed as stale, its death not reaped yet
        self.orders = 0
        self.last_req_id = 0
        self.died: float | None = None  # when the previous process of this trader was reaped
        self.drained = 0  # free-running: the end of the stream it handled everything up to
        self.retired = False  # finished: asked to stop, no longer counted or listed

    def heard_from(self, message) -> bool:
        """Note a message of this trader; False for a Hello of another process (a dead predecessor's)."""
        if isinstance(message, wire.Hello):
            if message.pid != self.pid:
                return False
            self.hello = True
        if self.hello:
            self.heard = time.monotonic()
        return True


class LeaderProcess:
    def __init__(self, spec: wire.RunSpec, symbol: str):
        self.spec = spec
        self.symbol = symbol
        self.state = core.LeaderState(symbol=symbol, settings=spec.settings[symbol], filters=spec.filters[symbol])
        self.procs: dict[int, TraderProc] = {}
        self.pids: dict[int, int] = {}  # pid -> trader id
        self.given_up: dict[int, wire.ProcessInfo] = {}  # trader id -> its last status row, state GAVE_UP
        self.delayed: list[tuple[float, StartTrader]] = []
        self.max_traders = 0
        self.ready_sent = False
        self.ended_seq: int | None = None
        self.ended_at = 0.0
        self.started_at = time.time()
        self.conductor = None
        self.next_beat = 0.0
        self.holding_count = False  # lockstep: inside one event's reports
        self.feed_live = False

    # -- persistence of what must survive a leader restart --------------------------------

    def _state_path(self) -> Path:
        return Path(self.spec.run_dir) / f"leader-{self.symbol}.json"

    def _load(self) -> None:
        try:
            saved = json.loads(self._state_path().read_text())
        except FileNotFoundError:
            return
        # Trader ids are unique for the life of the run directory: the counter survives us.
        self.state = replace(self.state, next_trader_id=saved.get("next_trader_id", 1))
        if saved.get("run_id") == self.spec.run_id:  # a restart within this run
            self.max_traders = saved.get("max_traders", 0)

    def _save(self) -> None:
        data = {"next_trader_id": self.state.next_trader_id, "max_traders": self.max_traders,
                "run_id": self.spec.run_id}
        write_atomically(self._state_path(), json.dumps(data))

    # -- boot and loop ------------------------------------------------------------------------

    def run(self) -> int:
        set_title(f"leader {self.symbol}")
        self.signals = SignalQueue((signal.SIGTERM, signal.SIGCHLD))
        self.ctx = zmq.Context()
        run_dir = self.spec.run_dir
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted trader takes over its id
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.bind(wire.address(run_dir, wire.leader_socket(self.symbol)))
        self.acks = self.ctx.socket(zmq.PUSH)
        self.acks.connect(wire.address(run_dir, "acks"))
        self.control = ControlLink(run_dir, context=self.ctx)
        if self.spec.lockstep:
            from naive_mp.runtime.conductor import Conductor
            self.conductor = Conductor(self)
            self.feed = subscriber(self.ctx, wire.address(run_dir, "updates"), [wire.lockstep_topic(self.symbol)])
            self.decode_feed = wire.Decoder("updates", wire.UpdateMessage)
        else:  # only for the end of the stream
            self.feed = subscriber(self.ctx, wire.address(run_dir, "trades"), [wire.END_TOPIC])
            self.decode_feed = wire.Decoder("trades", wire.StreamMessage)
        self.decode_trader = wire.Decoder(f"leader-{self.symbol}", wire.TraderToLeader)
        self.poller = zmq.Poller()
        for sock in (self.router, self.feed):
            self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.signals.fd, zmq.POLLIN)
        self._load()
        self.apply(TradingStarted())
        try:
            self._loop()
        finally:
            self._stop_traders()
            self._save()
            self.ctx.destroy(linger=0)  # traders are gone; the streamer, if any, no longer waits
        return EXIT_GAVE_UP if self.given_up else 0

    def _loop(self) -> None:
        while self.serve(timeout_ms=200):
            pass

    def serve(self, timeout_ms: int) -> bool:
        """One round of signals, delayed starts and messages; False once told to stop."""
        for signum in self.signals.take():
            if signum == signal.SIGCHLD:
                self._reap()
            else:
                log.info("%s leader stopping on signal %d", self.symbol, signum)
                return False
        self._start_due()
        self._check_end()
        if time.monotonic() >= self.next_beat:  # here, so a long lockstep wait still beats
            self._beat()
            self._kill_stale()
            self.next_beat = time.monotonic() + HEARTBEAT_S
        for sock, _ in self.poller.poll(timeout_ms):
            if sock is self.router:
                frames = self.router.recv_multipart()
                if len(frames) == 2:
                    self._on_trader(*frames)
            elif sock is self.feed:
                self._on_feed(wire.split_topic(self.feed.recv())[1])
        return True

    # -- messages -------------------------------------------------------------------------

    def _on_trader(self, identity: bytes, frame: bytes) -> None:
        message = self.decode_trader.or_drop(frame)
        if message is None:
            return
        proc = self.procs.get(int(identity)) if identity.isdigit() else None
        if proc is None or proc.retired:
            # a retired trader's last messages may still arrive; anything else is odd
            retired = proc is not None or (identity.isdigit() and int(identity) < self.state.next_trader_id)
            log.log(logging.DEBUG if retired else logging.WARNING,
                    "%s: message from %s trader %r dropped", self.symbol, "retired" if retired else "unknown", identity)
            return
        if not proc.heard_from(message):
            return
        if isinstance(message, wire.Hello):
            if proc.died is not None:
                log.info("%s#%d back up (pid %d), %.1f ms after its death was seen; restart %d",
                         self.symbol, int(identity), proc.pid, (time.monotonic() - proc.died) * 1e3, proc.restarts)
            self._maybe_ready()
        elif isinstance(message, wire.Report):
            if message.req_id > proc.last_req_id:  # a resend of an old report changes nothing
                proc.last_req_id, proc.orders = message.req_id, message.orders
                self.report(message.state)
            self.send_to(identity, wire.Ack(req_id=message.req_id))
        elif isinstance(message, wire.Drained):
            proc.drained = max(proc.drained, message.seq)
        elif isinstance(message, wire.Done) and self.conductor is not None:
            proc.orders = message.orders
            self.conductor.on_done(int(identity), message)

    def send_to(self, identity: bytes, message) -> bool:
        """Send to one trader; False when it is not connected (it died, or is not up yet)."""
        try:
            self.router.send_multipart([identity, wire.encode(message)])
            return True
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            return False

    def _on_feed(self, frame: bytes) -> None:
        message = self.decode_feed.or_drop(frame)
        if isinstance(message, wire.Welcome):
            self.feed_live = True
            self._maybe_ready()
        elif isinstance(message, wire.StreamEnded) and message.symbol == self.symbol:
            self.ended_seq, self.ended_at = message.last_seq, time.monotonic()
        elif isinstance(message, wire.Crossed):
            self.conductor.conduct(message)

    def _maybe_ready(self) -> None:
        """Tell the streamer to go once the feed is live and a first trader listens."""
        if self.ready_sent or not self.feed_live:
            return
        if self.state.traders and not any(p.hello for p in self.procs.values()):
            return
        self.acks.send(wire.encode(wire.Ready(role="leader", symbol=self.symbol)))
        self.ready_sent = True

    def _check_end(self) -> None:
        """Free-running, after the stream ended: ack once every trader drained its trades.

        A trader whose subscription came after the end never hears of it, so
        the wait is bounded; traders started after the end have nothing to drain.
        """
        if self.ended_seq is None:
            return
        waiting = [p for p in self.procs.values()
                   if p.pid > 0 and not p.retired and p.started < self.ended_at and p.drained < self.ended_seq]
        if not waiting or time.monotonic() - self.ended_at >= END_DRAIN_S:
            self.acks.send(wire.encode(wire.Handled(role="leader", symbol=self.symbol, seq=self.ended_seq)))
            self.ended_seq = None

    # -- the pure policy, and carrying out what it says ------------------------------------

    def report(self, state: TraderState) -> None:
        """A trader's new state: cache it; a rebuy shows as rebuy_notified turning true."""
        cached = self.state.traders.get(state.trader_id)
        rebuy = cached is not None and state.rebuy_notified and not cached.rebuy_notified
        self.apply(TraderReported(state=state))
        if rebuy:
            self.apply(RebuyRequested(trader_id=state.trader_id))

    def apply(self, event) -> None:
        before = self.state
        self.state, commands = core.step(self.state, event)
        for trader_id in before.traders.keys() - self.state.traders.keys():
            self._retire(trader_id)
        for command in commands:
            if isinstance(command, Notice):
                log.log(logs.LEVELS[command.level], "%s", command.text)
            elif isinstance(command, StartTrader):
                self.delayed.append((time.monotonic() + command.delay_s, command))
            elif isinstance(command, SymbolStopped):
                log.info("%s: no trader left after shutdown", self.symbol)
        if not self.holding_count:
            self.count_traders()
        if self.state.next_trader_id != before.next_trader_id:
            self._save()
        self._start_due()

    def count_traders(self) -> None:
        """Most traders alive at once; in lockstep counted once per event, as the backtester does."""
        self.max_traders = max(self.max_traders, len(self.state.traders))

    def _retire(self, trader_id: int) -> None:
        """A trader that left the policy's cache (finished, failed, given up) is stopped."""
        proc = self.procs.get(trader_id)
        if proc is not None and proc.pid > 0:
            proc.retired = True
            kids.send_signal(proc.pid, signal.SIGTERM)

    def _start_due(self) -> None:
        now = time.monotonic()
        due = [c for t, c in self.delayed if t <= now]
        self.delayed = [(t, c) for t, c in self.delayed if t > now]
        for command in due:
            self._fork(command)

    def _fork(self, command: StartTrader) -> None:
        state = command.state
        if state.trader_id not in self.state.traders:
            return  # given up or finished meanwhile
        old = self.procs.get(state.trader_id)
        restarts = old.restarts + 1 if old and command.restart else 0
        pid = fork_child(f"trader {state.label} {state.phase}", lambda: trader_process.run(self.spec, state),
                         log_name=f"trader {state.label}")
        proc = self.procs[state.trader_id] = TraderProc(pid, restarts)
        if old is not None and command.restart:
            proc.died, proc.boot_failures = old.died, old.boot_failures
        self.pids[pid] = state.trader_id

    def _reap(self) -> None:
        for pid, code in kids.reap():
            trader_id = self.pids.pop(pid, None)
            proc = self.procs.get(trader_id)
            if proc is None or proc.pid != pid:
                continue
            proc.pid, proc.died = -1, time.monotonic()
            if trader_id not in self.state.traders:  # it finished, and left
                del self.procs[trader_id]
                continue
            log.warning("%s#%d (pid %d) %s", self.symbol, trader_id, pid, describe_exit(code))
            self._died(trader_id, proc, pid)
            if self.conductor is not None:
                self.conductor.on_death(trader_id)

    def _died(self, trader_id: int, proc: TraderProc, pid: int) -> None:
        """Restart a dead trader from its cached state, or give up on it, as the restart policy says."""
        verdict = kids.RESTARTS.after_death(proc.boot_failures, proc.hello)
        proc.boot_failures = verdict.failures
        if not verdict.gave_up:
            self.apply(TraderDied(trader_id=trader_id, delay_s=verdict.delay_s))
            return
        self.given_up[trader_id] = wire.ProcessInfo(
            role="trader", pid=pid, symbol=self.symbol, trader_id=trader_id, state=kids.GAVE_UP,
            orders=proc.orders, restarts=proc.restarts, started_at=proc.started_at)
        del self.procs[trader_id]
        self.next_beat = 0.0  # tell the supervisor now: a stop may come before the next beat
        why = f"it could not boot {verdict.failures} times in a row (it died before its hello)"
        self.apply(TraderGivenUp(trader_id=trader_id, why=why))
        self._maybe_ready()  # the streamer may be waiting for that trader's Hello: none will come

    def _kill_stale(self) -> None:
        """SIGKILL each trader silent too long (hung, or stopped): the reaper restarts it like a crashed one."""
        now = time.monotonic()
        stale_s = self.spec.trader_stale_s
        for trader_id, proc in self.procs.items():
            if proc.pid > 0 and not proc.retired and not proc.killed and kids.is_stale(
                    now, proc.started, proc.heard, stale_s=stale_s, boot_grace_s=max(stale_s, TRADER_BOOT_GRACE_S)):
                log.error("%s#%d (pid %d) sent nothing for %.1f s: killing it", self.symbol, trader_id, proc.pid,
                          now - (proc.heard or proc.started))
                kids.send_signal(proc.pid, signal.SIGKILL)
                proc.killed = True

    # -- status and stopping -------------------------------------------------------------

    def _beat(self) -> None:
        children = [
            wire.ProcessInfo(role="trader", pid=p.pid, symbol=self.symbol, trader_id=tid,
                             state=self.state.traders[tid].phase if tid in self.state.traders else "",
                             orders=p.orders, restarts=p.restarts, started_at=p.started_at)
            for tid, p in sorted(self.procs.items()) if p.pid > 0 and not p.retired
        ] + list(self.given_up.values())
        info = wire.ProcessInfo(role="leader", pid=os.getpid(), symbol=self.symbol,
                                state=f"{len(self.state.traders)} traders", started_at=self.started_at)
        self.control.beat(info, children)

    def _stop_traders(self) -> None:
        live = [p.pid for p in self.procs.values() if p.pid > 0]
        for pid in live:
            kids.send_signal(pid, signal.SIGTERM)
        for pid in kids.stop_or_kill(live, STOP_GRACE_S, STOP_GRACE_S):
            log.warning("%s: trader pid %d did not stop in %.0f s; killed it", self.symbol, pid, STOP_GRACE_S)


def run(spec: wire.RunSpec, symbol: str) -> int:
    """Body of a forked leader process."""
    return LeaderProcess(spec, symbol).run()
