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

import contextlib
import logging
import os
import signal
import time

import zmq
from msgspec.structs import replace

from naive_mp import logs, wire
from naive_mp.logs import Throttle
from naive_mp.core import leader as core
from naive_mp.core.messages import (Notice, RebuyRequested, SettingsChanged, ShutdownRequested, StartTrader,
                                    SymbolStopped, TraderDied, TraderGivenUp, TraderReported, TradingStarted,
                                    TradingStopped)
from naive_mp.core.state import TraderState
from naive_mp.runtime import children as kids
from naive_mp.runtime import sockets
from naive_mp.runtime import trader as trader_process
from naive_mp.core import trader as trader_core
from naive_mp.runtime.control import ControlLink
from naive_mp.runtime.gateway_client import GatewayClient, GatewayUnavailable
from naive_mp.runtime.process import EXIT_GAVE_UP, describe_exit, fork_child, set_title
from naive_mp.runtime.signals import SignalQueue
from naive_mp.runtime.streams import subscriber
from naive_mp.store import LeaderRecord, Store

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
        self.lost = 0  # trades this process said it lost so far
        self.waiting = ""  # live: why its order waits to be placed again

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
        self.strangers = Throttle(log)
        self.max_traders = 0
        self.lost = 0  # trades its traders lost (free-running), for the run's lost events
        self.ready_sent = False
        self.ended_seq: int | None = None
        self.ended_at = 0.0
        self.started_at = time.time()
        self.conductor = None
        self.next_beat = 0.0
        self.holding = False  # inside one batch of changes: counted and committed once, at its end
        self.feed_live = False  # lockstep: the gateway's Crossed notices reach us
        self.streamer_live = False  # a streamer greeted our subscription (each new one hears Ready)
        self.last_seq = 0  # lockstep: the last trade event fully handled

    # -- the store: what must survive a leader restart ---------------------------------------

    def _load(self) -> None:
        """Our record, our traders' last acknowledged states and the symbol's settings, from the store."""
        self.store = Store(self.spec.run_dir)
        record, traders = self.store.leader(self.symbol)
        record = record or LeaderRecord(symbol=self.symbol)
        settings, filters = self.store.settings().get(self.symbol, (self.state.settings, self.state.filters))
        self.state = replace(self.state, settings=settings, filters=filters, traders=traders,
                             next_trader_id=record.next_trader_id, untradable=record.untradable)
        self.max_traders, self.last_seq, self.lost = record.max_traders, record.last_seq, record.lost
        self.saved = (self.state, self._record())
        if traders:
            log.info("%s: %d traders back from the store: %s", self.symbol, len(traders),
                     ", ".join(f"#{t.trader_id} {t.phase}" for t in traders.values()))

    def _record(self) -> LeaderRecord:
        return LeaderRecord(symbol=self.symbol, next_trader_id=self.state.next_trader_id,
                            max_traders=self.max_traders, last_seq=self.last_seq,
                            shutting_down=self.state.shutting_down, untradable=self.state.untradable,
                            lost=self.lost)

    def commit(self) -> None:
        """Store what changed since the last commit: done before anyone hears of it (acks, forks)."""
        before, saved_record = self.saved
        record = self._record()
        changed = [t for tid, t in self.state.traders.items() if before.traders.get(tid) is not t]
        removed = list(before.traders.keys() - self.state.traders.keys())
        if changed or removed or record != saved_record:
            self.store.save_leader(record, changed, removed)
        self.saved = (self.state, record)

    @contextlib.contextmanager
    def batch(self):
        """Changes inside are counted and committed once, at the end; traders start after the commit."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        self.count_traders()
        self.commit()
        self._start_due()

    def _trading_event(self):
        """What the operator's trading status (`naive-mp trade`) asks of this leader now."""
        status = self.store.trading().get(self.symbol, "start")
        if status == "stop":
            return None if self.state.stopped else TradingStopped()
        if status == "shutdown" and not self.state.stopped:
            return None if self.state.shutting_down else ShutdownRequested()
        if status == "start" and not self.state.stopped and not self.state.shutting_down:
            return None
        return TradingStarted(shutdown=status == "shutdown")

    def _boot_event(self):
        """How trading begins, as the operator last said: stopped, shutting down, or trading."""
        status = self.store.trading().get(self.symbol, "start")
        return TradingStopped() if status == "stop" else TradingStarted(shutdown=status == "shutdown")

    def _reload_trading(self) -> None:
        event = self._trading_event()
        if event is not None:
            log.info("%s: trading %s", self.symbol, type(event).__name__)
            self.apply(event)
            if isinstance(event, TradingStopped):
                self._pause_traders()

    def _reload_settings(self) -> None:
        settings, filters = self.store.settings().get(self.symbol, (self.state.settings, self.state.filters))
        if settings != self.state.settings:
            log.info("%s: new settings for the traders started from now on", self.symbol)
            self.apply(SettingsChanged(settings=settings))

    def _pause_traders(self) -> None:
        """`trade stop`: the processes stop; their states stay cached (and stored) to resume."""
        for proc in self.procs.values():
            if proc.pid > 0 and not proc.retired:
                kids.send_signal(proc.pid, signal.SIGTERM)

    # -- boot and loop ------------------------------------------------------------------------

    def run(self) -> int:
        set_title(f"leader {self.symbol}")
        self.signals = SignalQueue((signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1))
        self.ctx = zmq.Context()
        run_dir = self.spec.run_dir
        self.router = sockets.make(self.ctx, zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted trader takes over its id
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.bind(wire.address(run_dir, wire.leader_socket(self.symbol)))
        self.acks = sockets.make(self.ctx, zmq.PUSH)
        self.acks.connect(wire.address(run_dir, "acks"))
        self.control = ControlLink(run_dir, context=self.ctx)
        # to check a report that would end a trader against the exchange (one quick try: a
        # true report is sent again until acked)
        self.gateway = GatewayClient(self.ctx, run_dir, timeout_s=1.0, attempts=1)
        # The trade stream only for its ends, and to greet each (re)started streamer with Ready.
        self.ends = subscriber(self.ctx, wire.address(run_dir, "trades"), [wire.END_TOPIC])
        self.decode_ends = wire.Decoder("trades", wire.StreamMessage)
        self.feed = None
        if self.spec.lockstep:
            from naive_mp.runtime.conductor import Conductor
            self.conductor = Conductor(self)
            self.feed = subscriber(self.ctx, wire.address(run_dir, "updates"), [wire.lockstep_topic(self.symbol)])
            self.decode_feed = wire.Decoder("updates", wire.UpdateMessage)
        self.decode_trader = wire.Decoder(f"leader-{self.symbol}", wire.TraderToLeader)
        self.poller = zmq.Poller()
        for sock in (self.router, self.ends, self.feed):
            if sock is not None:
                self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.signals.fd, zmq.POLLIN)
        self._load()
        self.apply(self._boot_event())
        try:
            self._loop()
        finally:
            self._stop_traders()
            self.commit()
            self.store.close()
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
            elif signum == signal.SIGHUP:
                self._reload_settings()
            elif signum == signal.SIGUSR1:
                self._reload_trading()
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
            elif sock is self.ends:
                self._on_ends(wire.split_topic(self.ends.recv())[1])
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
            if retired:
                log.debug("%s: message from retired trader %r dropped", self.symbol, identity)
            else:  # anyone can connect here: a flood writes a few lines, not one per frame
                self.strangers.warning("%s: message from unknown trader %r dropped", self.symbol, identity)
            return
        if not proc.heard_from(message):
            return
        if isinstance(message, wire.Hello):
            if proc.died is not None:
                log.info("%s#%d back up (pid %d), %.1f ms after its death was seen; restart %d",
                         self.symbol, int(identity), proc.pid, (time.monotonic() - proc.died) * 1e3, proc.restarts)
            self._maybe_ready()
        elif isinstance(message, (wire.Report, wire.RebuyNotice)):
            if message.req_id > proc.last_req_id and not self.believable(message.state):
                return  # not acked: a true report is sent again, and checked again
            if message.req_id > proc.last_req_id:  # a resend of an old report changes nothing
                proc.last_req_id, proc.orders = message.req_id, message.orders
                with self.batch():  # the state and its rebuy notice: stored together, then acked
                    if isinstance(message, wire.RebuyNotice):
                        # first: the price fell before whatever the state says since (a DONE, even)
                        self.apply(RebuyRequested(trader_id=message.state.trader_id))
                    self.report(message.state)
            self.send_to(identity, wire.Ack(req_id=message.req_id))
        elif isinstance(message, wire.Drained):
            proc.drained = max(proc.drained, message.seq)
            self._count_lost(proc, message.lost)
        elif isinstance(message, wire.TraderBeat):
            self._count_lost(proc, message.lost)
            proc.waiting = message.waiting
        elif isinstance(message, wire.Done) and self.conductor is not None:
            proc.orders = message.orders
            self.conductor.on_done(int(identity), message)

    def believable(self, state: TraderState) -> bool:
        """False for a report that ends a trader while the exchange says otherwise.

        A DONE needs its SELL filled; a FAILED needs the order the cached state names not
        open. Anyone who can reach our socket could send such a report: stopping a trader
        on its word would leave an open order unfollowed. Other reports are only cached.
        """
        cached = self.state.traders.get(state.trader_id)
        if state.phase not in ("DONE", "FAILED") or cached is None:
            return True
        try:
            if state.phase == "DONE":
                order = self.gateway.query(state.client_order_id("SELL"))
                contradiction = None if order is not None and order.status == "FILLED" else \
                    f"its SELL {state.client_order_id('SELL')} is {order.status if order else 'unknown'}"
            else:
                asked = [self.gateway.query(cid) for _, cid in trader_core.orders_to_check(cached)]
                contradiction = next((f"its {o.side} {o.client_order_id} is open" for o in asked
                                      if o is not None and o.status == "NEW"), None)
        except GatewayUnavailable:
            contradiction = "the gateway cannot confirm it now"
        if contradiction:
            log.warning("%s: a report of %s for #%d not believed: %s", self.symbol, state.phase,
                        state.trader_id, contradiction)
        return contradiction is None

    def _count_lost(self, proc: TraderProc, lost: int) -> None:
        """A trader's running count of lost trades: the run's total grows by what is new."""
        if lost > proc.lost:
            self.lost, proc.lost = self.lost + lost - proc.lost, lost
            self.commit()

    def send_to(self, identity: bytes, message) -> bool:
        """Send to one trader; False when it is not connected (it died, or is not up yet)."""
        try:
            self.router.send_multipart([identity, wire.encode(message)])
            return True
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            return False

    def _on_ends(self, frame: bytes) -> None:
        message = self.decode_ends.or_drop(frame)
        if isinstance(message, wire.Welcome):  # a streamer (re)started: it waits for our Ready
            self.streamer_live, self.ready_sent = True, False
            self._maybe_ready()
        elif isinstance(message, wire.StreamEnded) and message.symbol == self.symbol and not self.spec.lockstep:
            self.ended_seq, self.ended_at = message.last_seq, time.monotonic()

    def _on_feed(self, frame: bytes) -> None:
        message = self.decode_feed.or_drop(frame)
        if isinstance(message, wire.Welcome):
            self.feed_live = True
            self._maybe_ready()
        elif isinstance(message, wire.Crossed):
            self.conductor.conduct(message)

    def _maybe_ready(self) -> None:
        """Tell the streamer to go once we hear it (and, in lockstep, the gateway) and a first trader listens."""
        if self.ready_sent or not self.streamer_live or (self.spec.lockstep and not self.feed_live):
            return
        running = self.state.traders and not self.state.stopped
        if running and not any(p.hello for p in self.procs.values()):
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
        """A trader's new state: the cache a restart of it starts from."""
        self.apply(TraderReported(state=state))

    def apply(self, event) -> None:
        """Step the policy, store the outcome, then carry out its commands."""
        before = self.state
        self.state, commands = core.step(self.state, event)
        if not self.holding:
            self.count_traders()
            self.commit()
        for trader_id in before.traders.keys() - self.state.traders.keys():
            self._retire(trader_id)
        for command in commands:
            if isinstance(command, Notice):
                log.log(logs.LEVELS[command.level], "%s", command.text)
            elif isinstance(command, StartTrader):
                self.delayed.append((time.monotonic() + command.delay_s, command))
            elif isinstance(command, SymbolStopped):
                log.info("%s: no trader left after shutdown", self.symbol)
        if not self.holding:
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
        if self.holding:
            return  # after the batch's commit
        now = time.monotonic()
        due = [c for t, c in self.delayed if t <= now]
        self.delayed = [(t, c) for t, c in self.delayed if t > now]
        for command in due:
            self._fork(command)

    def _fork(self, command: StartTrader) -> None:
        state = command.state
        if state.trader_id not in self.state.traders or self.state.stopped:
            return  # given up or finished meanwhile, or trading stopped
        old = self.procs.get(state.trader_id)
        if old is not None and old.pid > 0 and not old.retired:
            return  # still running (trading resumed while it was)
        state = self.state.traders[state.trader_id]  # the latest state, not the one when asked
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
            if self.state.stopped:  # `trade stop` asked for it
                log.info("%s#%d (pid %d) stopped; its state is kept", self.symbol, trader_id, pid)
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
                             state=(self.state.traders[tid].phase if tid in self.state.traders else "")
                             + (f" (waiting: {p.waiting})" if p.waiting else ""),
                             orders=p.orders, restarts=p.restarts, started_at=p.started_at)
            for tid, p in sorted(self.procs.items()) if p.pid > 0 and not p.retired
        ] + list(self.given_up.values())
        mode = "stopped, " if self.state.stopped else "shutting down, " if self.state.shutting_down else ""
        info = wire.ProcessInfo(role="leader", pid=os.getpid(), symbol=self.symbol,
                                state=f"{mode}{len(self.state.traders)} traders", started_at=self.started_at)
        alive = wire.Sample(name="naive_mp_traders_alive", value=len(self.state.traders), labels={"symbol": self.symbol})
        self.control.beat(info, children, samples=[alive])

    def _stop_traders(self) -> None:
        live = [p.pid for p in self.procs.values() if p.pid > 0]
        for pid in live:
            kids.send_signal(pid, signal.SIGTERM)
        for pid in kids.stop_or_kill(live, STOP_GRACE_S, STOP_GRACE_S):
            log.warning("%s: trader pid %d did not stop in %.0f s; killed it", self.symbol, pid, STOP_GRACE_S)


def run(spec: wire.RunSpec, symbol: str) -> int:
    """Body of a forked leader process."""
    return LeaderProcess(spec, symbol).run()
