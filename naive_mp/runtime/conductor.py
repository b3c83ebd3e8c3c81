"""Lockstep: the leader hands its traders each event in strategy.md's order.

For trade `seq` the gateway has already filled what it crosses and sent the
fills (`Crossed`). The conductor then (2) hands each filled trader its fill,
ascending id, (3) hands every other trader the trade if it reacts to it,
ascending id, one at a time, each placing its orders before it answers, so
the exchange numbers orders exactly as the backtester does; (4) lets the
leader policy handle the reports in ascending id, waits until every new
trader is up, and tells the streamer the event is handled. The order of
(2)-(4) is naive_mp.core.order's, the same the backtester follows.
"""

import logging
import time

from naive_mp import wire
from naive_mp.core import order
from naive_mp.core.messages import OrderFilled, RebuyRequested, TradeSeen, TraderReported

log = logging.getLogger("naive_mp.leader")

DONE_WAIT_S = 30.0


class Conductor:
    def __init__(self, leader):
        self.leader = leader
        self.current: int | None = None  # the seq being conducted
        self.waiting: tuple[int, int] | None = None  # (trader id, seq) whose Done we await
        self.done: wire.Done | None = None

    def conduct(self, crossed: wire.Crossed) -> None:
        leader = self.leader
        if crossed.seq == self.current:
            return  # sent again while we conduct it (a consumer restarted): acked when done
        if leader.state.stopped:  # `trade stop`: the symbol sits this event out
            pass
        elif crossed.seq > leader.last_seq:
            self.current = crossed.seq
            self._wait_all_up()
            trade = TradeSeen(symbol=crossed.symbol, trade_id=crossed.trade.trade_id,
                              price=crossed.trade.price, time_us=crossed.trade.time_us)
            # who gets what follows from the cached states before anybody steps, as in the backtest
            dones = [self._hand(tid, crossed.seq, event)
                     for tid, event in order.hand_offs(leader.state.traders, crossed.fills, trade)]
            with leader.batch():  # stored, with the event's seq, before it is acked
                for event in order.for_leader(_leader_events(d for d in dones if d is not None)):
                    leader.apply(event)
                leader.last_seq = crossed.seq
            self._wait_all_up()
            self.current = None
        # a duplicate (the streamer restarted) was handled before: just say so again
        quiet = order.EMPTY_BAND if leader.state.stopped else order.quiet_band(leader.state.traders)
        leader.acks.send(wire.encode(wire.Handled(role="leader", symbol=crossed.symbol, seq=crossed.seq,
                                                  quiet=quiet)))

    def _hand(self, trader_id: int, seq: int, event: TradeSeen | OrderFilled) -> wire.Done | None:
        """Hand one event to one trader and wait for its new state (resent if it restarted)."""
        leader = self.leader
        deadline = time.monotonic() + DONE_WAIT_S
        self.waiting, self.done = (trader_id, seq), None
        sent_to = None
        while self.done is None:
            proc = leader.procs.get(trader_id)
            if trader_id not in leader.state.traders:
                return None  # given up on while we waited
            if proc is not None and proc.hello and proc.pid > 0 and sent_to != proc.pid:
                if leader.send_to(str(trader_id).encode(), wire.Handle(seq=seq, event=event)):
                    sent_to = proc.pid  # else not connected yet: try again on the next round
            if time.monotonic() > deadline:
                raise RuntimeError(f"lockstep: trader {leader.symbol}#{trader_id} did not handle seq {seq} in {DONE_WAIT_S:.0f} s")
            if not leader.serve(timeout_ms=50):
                raise SystemExit(0)
        self.waiting = None
        return self.done

    def on_done(self, trader_id: int, done: wire.Done) -> None:
        if self.waiting == (trader_id, done.seq) and self.leader.believable(done.state):
            self.done = done

    def on_death(self, trader_id: int) -> None:
        """A trader died mid-event: its restart (same id) gets the event again after Hello."""
        if self.waiting and self.waiting[0] == trader_id:
            log.warning("%s#%d died while handling seq %d", self.leader.symbol, trader_id, self.waiting[1])

    def _wait_all_up(self) -> None:
        """Every cached trader has a process that said Hello (new ones act from this event)."""
        leader = self.leader
        deadline = time.monotonic() + DONE_WAIT_S
        while any(not (p := leader.procs.get(tid)) or not p.hello or p.pid <= 0 for tid in leader.state.traders):
            if time.monotonic() > deadline:
                raise RuntimeError(f"lockstep: {leader.symbol} traders did not come up in {DONE_WAIT_S:.0f} s")
            if not leader.serve(timeout_ms=20):
                raise SystemExit(0)



def _leader_events(dones):
    """What each trader's Done tells the leader: its new state, then its rebuy notice if it sent one."""
    for done in dones:
        yield TraderReported(state=done.state)
        if done.rebuy:
            yield RebuyRequested(trader_id=done.state.trader_id)
