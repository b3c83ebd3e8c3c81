"""The trader process: one trader of one symbol, running the pure trader core.

Free-running, it subscribes to its symbol's trades and its own order
updates, places orders through the gateway and reports each new state to its
leader (which caches it). In lockstep, its leader hands it each event in
strategy.md's order and waits for it to finish.

Exactly once through a kill -9 of the trader: client order ids are fixed by symbol,
trader, cycle and side, the gateway treats a repeated place as a question,
and a restarted trader first asks the gateway about the order its state
names (and, from NEW, the BUY it may have placed just before dying).
"""

import logging
import os
import time

import zmq

from naive_mp import wire
from naive_mp.core import trader as core
from naive_mp.core.messages import (
    OrderCanceled,
    OrderChecked,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RequestRebuy,
    TradeSeen,
)
from naive_mp.core.state import FINAL_PHASES, TraderState
from naive_mp.runtime import sockets
from naive_mp.runtime.gateway_client import GatewayClient
from naive_mp.runtime.process import set_title
from naive_mp.runtime.signals import SignalQueue
from naive_mp.runtime.streams import subscriber

log = logging.getLogger("naive_mp.trader")

REPORT_RETRY_S = 1.0
# A subscription reaches the streamer a little after we ask: a batch published before
# this long after the ask may have had predecessors we were never sent.
RESYNC_GRACE_NS = 100_000_000
WELCOME_WAIT_S = 5.0
BEAT_S = 1.0  # a TraderBeat to the leader this often: it kills a trader silent for RunSpec.trader_stale_s


class TraderProcess:
    """The shell around `core.step`: sockets in, commands out."""

    def __init__(self, spec: wire.RunSpec, state: TraderState):
        self.spec = spec
        self.state = state
        self.orders = 0
        self.lost = 0
        self.next_seq = 0  # next trade batch seq expected (0: none seen yet)
        # Monotonic across the processes of this trader, so the leader never takes a
        # dead predecessor's late report for a newer one (or the other way round).
        self.req_id = time.monotonic_ns()
        self.unacked: wire.Report | None = None
        self.report_sent_at = 0.0
        self.cause_ns = 0
        self.conducted = False  # lockstep: inside a Handle, the Done carries the state
        self.reported: TraderState | None = None
        self.rebuy_unacked = False  # a rebuy notice not yet acked rides on every report until it is
        self.resync_after_ns = 0  # batches published before this are not checked for gaps
        self.next_beat = 0.0
        # Live: a refusal not for good (insufficient balance, a rate limit): the same order again then.
        self.retry_at: float | None = None
        self.waiting_for = ""

    # -- boot -----------------------------------------------------------------

    def run(self) -> int:
        set_title(self._title())
        self.signals = SignalQueue()
        self.ctx = zmq.Context()
        run_dir, symbol, tid = self.spec.run_dir, self.state.symbol, self.state.trader_id
        self.leader = sockets.make(self.ctx, zmq.DEALER)
        self.leader.setsockopt(zmq.LINGER, 1000)
        self.leader.setsockopt(zmq.IDENTITY, str(tid).encode())  # the leader addresses us by id
        self.leader.connect(wire.address(run_dir, wire.leader_socket(symbol)))
        self.gateway = GatewayClient(self.ctx, run_dir)
        self.decoders = (wire.Decoder("trades", wire.StreamMessage), wire.Decoder("updates", wire.UpdateMessage),
                         wire.Decoder(f"leader-{symbol}", wire.LeaderToTrader))
        self.poller = zmq.Poller()
        self.poller.register(self.leader, zmq.POLLIN)
        self.poller.register(self.signals.fd, zmq.POLLIN)
        if not self.spec.lockstep:
            self.trades = self._subscribe("trades", [wire.trade_topic(symbol), wire.END_TOPIC])
            self.listening = True
            self.resync_after_ns = time.monotonic_ns() + RESYNC_GRACE_NS
            self.own_topic = wire.update_topic(symbol, tid)
            self.welcomed = False
            self.updates = self._subscribe("updates", [self.own_topic])
        try:
            if not self.spec.lockstep and not self._wait_live():
                return 0
            if not self.spec.lockstep:  # in lockstep the leader hands us again what we missed
                self._reconcile()
            self._listen_if_needed()
            self._warm_up()
            self.leader.send(wire.encode(wire.Hello(trader_id=tid, pid=os.getpid())))
            return self._loop()
        finally:
            self.ctx.destroy(linger=100)  # stopped by our leader: nothing left to deliver

    def _warm_up(self) -> None:
        """Run the order path once before saying hello, with nothing sent.

        In a fresh fork every first touch of the inherited heap is a copy-on-write
        fault: measured here, the first log line took ~400 us and the first core
        step ~90 us, against ~45 and ~12 warm. Paid now, not on the first tick.
        """
        probe = core.fresh_trader(self.state.symbol, self.state.trader_id, self.state.settings, self.state.filters)
        price = self.state.plan.buy_price if self.state.plan else self.state.filters.tick_size * 100_000
        batch = wire.TradeBatch(symbol=probe.symbol, seq=1, sent_ns=0, trades=[wire.Trade(0, price, 0)])
        (trade,) = self.decoders[0](wire.encode(batch)).events()
        _, commands = core.step(probe, trade)
        for command in commands:
            wire.encode(wire.Place(req_id=0, order=command, cause_ns=time.monotonic_ns()))
        wire.encode(wire.Report(req_id=0, state=self.state))
        log.info("%s: up (pid %d) in %s", self.state.label, os.getpid(), self.state.phase)

    def _subscribe(self, name: str, topics: list[bytes]) -> zmq.Socket:
        sub = subscriber(self.ctx, wire.address(self.spec.run_dir, name), topics)
        self.poller.register(sub, zmq.POLLIN)
        return sub

    def _wait_live(self) -> bool:
        """Until both subscriptions are live (a Welcome is queued on each); False on SIGTERM.

        Bounded: with no streamer (the replay is over, or it is restarting) we listen anyway.
        """
        deadline = time.monotonic() + WELCOME_WAIT_S
        waiting = {self.trades, self.updates}
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%s: no welcome after %.0f s; listening anyway", self.state.label, WELCOME_WAIT_S)
                return True
            ready = dict(self.poller.poll(left * 1000))
            if self.signals.take():
                return False
            waiting -= ready.keys()
        return True

    def _reconcile(self) -> None:
        """Ask the gateway about every order the state names before anything else."""
        for side, client_order_id in core.orders_to_check(self.state):
            order = self.gateway.query(client_order_id)
            checked = OrderChecked(
                client_order_id=client_order_id, side=side,
                status=order.status if order else None,
                price=order.price if order else None,
                quantity=order.quantity if order else None,
                trade_id=order.filled_trade_id if order else None,
                received=order.received if order else None,
                executed=order.executed if order else None,
            )
            if order is not None or self.state.phase != "NEW":
                log.info("%s: after restart, %s is %s", self.state.label, client_order_id,
                         order.status if order else "unknown to the exchange")
            self._handle(checked)

    # -- the loop -------------------------------------------------------------

    def _loop(self) -> int:
        decode_stream, decode_update, decode_leader = self.decoders
        # A finished trader waits for its leader to stop it: the leader owns every
        # trader's life, so an exit it did not ask for is always a death.
        while True:
            for signum in self.signals.take():
                log.info("%s: stopping on signal %d in %s", self.state.label, signum, self.state.phase)
                return 0
            self._resend_report()
            self._beat()
            self._retry_if_due()
            for sock, _ in self.poller.poll(REPORT_RETRY_S * 1000 / 4):
                if sock is self.leader:
                    self._on_leader(decode_leader.or_drop(self.leader.recv()))
                elif not self.spec.lockstep and sock is self.trades:
                    self._on_trades([decode_stream.or_drop(wire.split_topic(f)[1]) for f in self._drain(self.trades)])
                elif not self.spec.lockstep and sock is self.updates:
                    self._on_update(decode_update.or_drop(wire.split_topic(self.updates.recv())[1]))

    def _listen_if_needed(self) -> None:
        """Subscribe to the symbol's trades only while they can make us act.

        A trader waiting for its BUY to fill, or past its rebuy, ignores every trade:
        unsubscribed, it is not woken for each one, which leaves the CPU to those that act.
        (The end-of-stream topic stays subscribed, to say when we are drained.)
        """
        if self.spec.lockstep:
            return
        wanted = core.acts_on_any_trade(self.state) or core.rebuy_watch(self.state) is not None
        if wanted != self.listening:
            option = zmq.SUBSCRIBE if wanted else zmq.UNSUBSCRIBE
            self.trades.setsockopt(option, wire.trade_topic(self.state.symbol))
            self.listening, self.next_seq = wanted, 0  # trades skipped meanwhile are no loss
            self.resync_after_ns = time.monotonic_ns() + RESYNC_GRACE_NS

    @staticmethod
    def _drain(sock: zmq.Socket) -> list[bytes]:
        """Every frame waiting on `sock` (at least one: the poll said so)."""
        frames = [sock.recv()]
        while True:
            try:
                frames.append(sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                return frames

    def _on_trades(self, messages: list) -> None:
        """Trades that were waiting, in order; a fresh trader acts on the newest price only.

        Free-running, a trader that just started (or restarted) may find trades queued
        while it booted: its BUY is placed from the market as it is now, not as it was.
        A trader watching for a rebuy still sees every one of them.
        """
        newest = max((i for i, m in enumerate(messages) if isinstance(m, wire.TradeBatch)), default=-1)
        for i, message in enumerate(messages):
            stale = i < newest and isinstance(message, wire.TradeBatch)
            if stale and core.acts_on_any_trade(self.state):
                self._unseen_offset(message)  # stale for a fresh trader: only counted
            else:
                self._on_stream(message)

    def _on_stream(self, message) -> None:
        if isinstance(message, wire.StreamEnded) and message.symbol != self.state.symbol:
            return
        ended = message.last_seq if isinstance(message, (wire.StreamEnded, wire.Welcome)) else None
        if ended is not None:  # the stream is over and every trade of it handled: say so
            self.leader.send(wire.encode(wire.Drained(seq=ended, lost=self.lost)))
        if not isinstance(message, wire.TradeBatch):
            return
        first = self._unseen_offset(message)
        self.cause_ns = message.sent_ns
        if core.acts_on_any_trade(self.state):
            first = max(first, len(message.trades) - 1)  # the newest price, as above
        for trade in message.trades[first:]:
            if not self.listening or self.state.phase in FINAL_PHASES:
                return  # queued before we unsubscribed
            if core.reacts_to(self.state, trade.price):
                self._handle(TradeSeen(symbol=message.symbol, trade_id=trade.trade_id,
                                       price=trade.price, time_us=trade.time_us))

    def _unseen_offset(self, batch: wire.TradeBatch) -> int:
        """Count a gap as lost trades; skip trades seen before (a restarted streamer resends).

        A batch published around a (re)subscription says nothing of losses: the ones
        published while we were not subscribed were never ours (and those may arrive
        after a batch queued before we unsubscribed). Counting starts after it.
        """
        if batch.sent_ns < self.resync_after_ns:
            return max(0, self.next_seq - batch.seq) if self.next_seq else 0
        if self.next_seq and batch.seq > self.next_seq:
            self.lost += batch.seq - self.next_seq
            log.warning("%s: lost %d trades before seq %d", self.state.label, batch.seq - self.next_seq, batch.seq)
        first = max(0, self.next_seq - batch.seq) if self.next_seq else 0
        self.next_seq = max(self.next_seq, batch.seq + len(batch.trades))
        return first

    def _on_update(self, message) -> None:
        if isinstance(message, wire.Filled):
            self.cause_ns = message.cause_ns
            self._on_fill(message.fill)
        elif isinstance(message, wire.Canceled):
            self._on_canceled(message.event)
        elif isinstance(message, wire.Refused):
            self._on_refused(message)
        elif isinstance(message, wire.Welcome) and message.topic.encode() == self.own_topic:
            # Our subscription reached a gateway: at boot, or a restarted one (which
            # may have lost its book). Ask it about our order again either way.
            if self.welcomed:
                log.warning("%s: the gateway came back; checking orders", self.state.label)
                self._reconcile()
            self.welcomed = True

    def _on_fill(self, fill: OrderFilled) -> None:
        # The same fill can come twice (the update stream and a reply); only the open order counts.
        side = {"BUY_PLACED": "BUY", "SELL_PLACED": "SELL"}.get(self.state.phase)
        if side == fill.side and fill.client_order_id == self.state.client_order_id(side):
            self._handle(fill)

    def _on_canceled(self, event: OrderCanceled) -> None:
        """Someone canceled an order of ours: recover by the strategy's rule, if it is our open one."""
        side = {"BUY_PLACED": "BUY", "SELL_PLACED": "SELL"}.get(self.state.phase)
        if side == event.side and event.client_order_id == self.state.client_order_id(side):
            log.warning("%s: its %s %s was canceled at the exchange", self.state.label, side, event.client_order_id)
            self._handle(event)

    def _on_refused(self, message: wire.Refused) -> None:
        """Live: how a Place answered PENDING_NEW ended, when it ended in a refusal."""
        event = message.event
        order = core.open_order(self.state)
        if order is None or order.client_order_id != event.client_order_id:
            return  # about an order we no longer wait for
        if message.retry_after_s <= 0:
            log.error("%s: %s %s refused for good: %s %s", self.state.label, event.side, event.client_order_id,
                      event.code, event.reason)
            self._handle(event)
            return
        self.retry_at = time.monotonic() + message.retry_after_s
        self.waiting_for = f"{event.code} {event.reason}"
        log.warning("%s: %s %s refused (%s %s): placing it again in %.0f s", self.state.label, event.side,
                    event.client_order_id, event.code, event.reason, message.retry_after_s)
        set_title(self._title())

    def _retry_if_due(self) -> None:
        if self.retry_at is None or time.monotonic() < self.retry_at:
            return
        self.retry_at, self.waiting_for = None, ""
        order = core.open_order(self.state)
        set_title(self._title())
        if order is not None:
            self._place(order)

    def _on_leader(self, message) -> None:
        if isinstance(message, wire.Ack):
            if self.unacked is not None and message.req_id == self.unacked.req_id:
                if isinstance(self.unacked, wire.RebuyNotice):
                    self.rebuy_unacked = False
                self.unacked = None
        elif isinstance(message, wire.Handle):  # lockstep: handle exactly this, then say so
            self.conducted = True
            if isinstance(message.event, OrderFilled):
                self._on_fill(message.event)
            else:
                self._handle(message.event)
            self.conducted = False
            self.leader.send(wire.encode(wire.Done(seq=message.seq, state=self.state, orders=self.orders,
                                                   rebuy=self.rebuy_unacked)))
            self.rebuy_unacked = False

    # -- stepping the core and carrying out its commands -----------------------------

    def _handle(self, event) -> None:
        before = self.state
        self.state, commands = core.step(self.state, event)
        changed = self.state
        # The order goes out first: it is what the tick waits for. Reporting after it is
        # as safe: a restarted trader finds (and adopts) an order its last report missed.
        for command in commands:
            if isinstance(command, PlaceOrder):
                self._place(command)  # may step again: a refusal, or a retry's fill
            elif isinstance(command, RequestRebuy):
                log.info("%s: rebuy triggered", changed.label)
                self.rebuy_unacked = True
        if changed is not before:
            self._changed(before.phase, changed)

    def _changed(self, old_phase: str, changed: TraderState) -> None:
        if not self.conducted and self.state is not self.reported:
            self._report()  # the latest state, once, however deep the steps went
        self._listen_if_needed()
        if changed.phase != old_phase:
            set_title(self._title())
            if changed.phase in FINAL_PHASES:
                log.info("%s: %s%s", changed.label, changed.phase, f" ({changed.reason})" if changed.reason else "")

    def _place(self, command: PlaceOrder) -> None:
        reply = self.gateway.place(command, self.cause_ns)
        self.orders += 1
        log.info("%s: placed %s order @ %s, quantity %s%s", self.state.label, command.side,
                 f"{command.price:f}", f"{command.quantity:f}",
                 f" (refused: {reply.code} {reply.reason})" if reply.order is None else "")
        if reply.order is None:
            self._handle(OrderRejected(client_order_id=command.client_order_id, side=command.side,
                                       code=reply.code, reason=reply.reason))
        elif reply.order.status == "FILLED":  # a retry after a fill: the reply is the news
            o = reply.order
            self._on_fill(OrderFilled(client_order_id=o.client_order_id, order_id=o.order_id, side=o.side,
                                      price=o.price, quantity=o.quantity, trade_id=o.filled_trade_id or 0,
                                      received=o.received))

    def _report(self) -> None:
        self.reported = self.state
        self.req_id += 1
        kind = wire.RebuyNotice if self.rebuy_unacked else wire.Report
        self.unacked = kind(req_id=self.req_id, state=self.state, orders=self.orders)
        self._send_report()

    def _send_report(self) -> None:
        self.leader.send(wire.encode(self.unacked))
        self.report_sent_at = time.monotonic()

    def _resend_report(self) -> None:
        # The leader de-duplicates by req_id; only the latest state is ever resent.
        if self.unacked is not None and time.monotonic() - self.report_sent_at > REPORT_RETRY_S:
            self._send_report()

    def _beat(self) -> None:
        # From the loop, free-running and in lockstep alike: a trader hung anywhere else
        # (or stopped with SIGSTOP) falls silent, and its leader kills and restarts it.
        now = time.monotonic()
        if now >= self.next_beat:
            self.next_beat = now + BEAT_S
            try:
                self.leader.send(wire.encode(wire.TraderBeat(lost=self.lost, waiting=self.waiting_for)), zmq.NOBLOCK)
            except zmq.Again:  # the leader is not reading: it will not miss one beat
                pass

    def _title(self) -> str:
        waiting = f" waiting: {self.waiting_for}" if self.waiting_for else ""
        return f"trader {self.state.label} {self.state.phase}{waiting}"


def run(spec: wire.RunSpec, state: TraderState) -> int:
    """Body of a forked trader process."""
    return TraderProcess(spec, state).run()
