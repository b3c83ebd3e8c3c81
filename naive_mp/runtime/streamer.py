"""The streamer process: trade events in, one PUB topic per symbol out.

It replays tapes (`--replay`, at `--speed N` or as fast as the system
takes it); the live Binance source plugs in as another `source`. Nothing is
published until every consumer is known to listen (the gateway and, on a
first start, each leader say `Ready`). Each symbol's trades are numbered,
so a consumer counts a gap as lost; the position is saved in the run
directory, so a restarted streamer goes on where it stopped and consumers
drop what they already saw.

In lockstep it sends one trade at a time and waits until the gateway and
the symbol's leader say they handled it.
"""

import logging
import os
import time

import zmq

from naive_mp import wire
from naive_mp.core import order
from naive_mp.exchange import TradeSource
from naive_mp.data.recorder import DailyTapes
from naive_mp.data.tapes import read_tape
from naive_mp.runtime.control import ControlLink
from naive_mp.runtime.signals import SignalQueue
from naive_mp.runtime import sockets
from naive_mp.runtime.streams import publisher, welcome
from naive_mp.store import Store, StreamPosition

log = logging.getLogger("naive_mp.streamer")

BATCH = 256  # most trades in one message when behind schedule (speed max)
HEARTBEAT_S = 1.0
SAVE_EVERY_S = 0.2


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: leave the loop."""


class Streamer:
    def __init__(self, spec: wire.RunSpec):
        self.spec = spec
        self.position: dict = {}  # tape index, offset in it, per-symbol seq (loaded after the fork)
        self.ready: set[tuple[str, str | None]] = set()
        self.handled: dict[tuple[str, str], int] = {}
        self.quiet: dict[str, tuple] = {}  # lockstep: symbol -> the band its leader said nobody acts in
        self.ended: dict[str, int] = {}  # symbol -> last seq, once its stream is over
        self.in_flight: tuple[str, wire.TradeBatch] | None = None
        self.sent = 0
        self.started_at = time.time()
        self.next_beat = 0.0
        self.saved_at = 0.0
        self.live: TradeSource | None = None  # the live market's trades (exchange.binance_stream.LiveTrades)
        self.progress = Progress(sum(spec.replay_trades))

    # -- position across restarts (the store's stream table) ----------------------------

    def _load_position(self) -> dict:
        """Where this run's replay stands: a restart (of us, or of the whole tree) goes on from there."""
        self.store = Store(self.spec.run_dir)
        saved = self.store.position() or StreamPosition()
        return {"tape": saved.tape, "offset": saved.offset, "seq": dict(saved.seq), "ended": saved.ended,
                "last_ids": dict(saved.last_ids)}

    def _save_position(self, force: bool = False) -> None:
        if force or time.monotonic() - self.saved_at > SAVE_EVERY_S:
            self.store.save_position(StreamPosition(tape=self.position["tape"], offset=self.position["offset"],
                                                    seq=self.position["seq"], ended=self.position["ended"],
                                                    last_ids=self.position["last_ids"]))
            self.saved_at = time.monotonic()

    # -- boot -----------------------------------------------------------------------

    def run(self) -> int:
        self.signals = SignalQueue()
        self.position = self._load_position()
        self.ctx = zmq.Context()
        self.pub = publisher(self.ctx, wire.address(self.spec.run_dir, "trades"))
        self.acks = sockets.make(self.ctx, zmq.PULL)  # Ready and Handled: a few per consumer in flight
        self.acks.bind(wire.address(self.spec.run_dir, "acks"))
        self.control = ControlLink(self.spec.run_dir, context=self.ctx)
        self.poller = zmq.Poller()
        for sock in (self.pub, self.acks):
            self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.signals.fd, zmq.POLLIN)
        self.decode_ack = wire.Decoder("acks", wire.AckMessage)
        try:
            self._wait_ready()
            if not self.spec.replay:
                self._live()  # only a signal ends it (Stopped)
            self._replay()
        except Stopped:
            self._save_position(force=True)  # a stopped replay resumes here on the next start
        else:  # the replay is over and handled: the next start archives the run
            self.position["ended"] = True
            self._save_position(force=True)
        finally:
            self.store.close()
            self.ctx.destroy(linger=1000)
        return 0

    def _expected_ready(self) -> set:
        # The gateway and every leader say Ready on each streamer's greeting, a restarted one's too.
        return {("gateway", None)} | {("leader", s) for s in self.spec.symbols}

    def _wait_ready(self) -> None:
        expected = self._expected_ready()
        log.info("waiting for %s", ", ".join(f"{r} {s or ''}".strip() for r, s in sorted(expected, key=str)))
        while not expected <= self.ready:
            self._serve(timeout_ms=200)
        log.info("every consumer listens; streaming")

    # -- serving acks, subscriptions, signals ----------------------------------------

    def _serve(self, timeout_ms: int) -> None:
        if self.signals.take():
            raise Stopped
        if time.monotonic() >= self.next_beat:
            self._beat()
        for sock, _ in self.poller.poll(timeout_ms):
            if sock is self.pub and welcome(self.pub, self.ended) == wire.END_TOPIC:
                self._announce_ends()  # a leader (re)started after the end must hear of it too
            elif sock is self.acks:
                self._on_ack(self.acks.recv())

    def _on_ack(self, frame: bytes) -> None:
        ack = self.decode_ack.or_drop(frame)
        if isinstance(ack, wire.Ready):
            self.ready.add((ack.role, ack.symbol))
            if self.spec.lockstep and self.in_flight is not None:
                # a restarted consumer may have lost the trade we wait on: send it again
                # (whoever handled it already drops it as seen, and says so)
                self._publish(*self.in_flight)
        elif ack is not None:
            key = (ack.role, ack.symbol)
            if ack.seq >= self.handled.get(key, 0):
                self.handled[key] = ack.seq
                if ack.quiet is not None:
                    self.quiet[ack.symbol] = ack.quiet

    def _beat(self) -> None:
        tape = self.position["tape"]
        samples = [wire.Sample(name="naive_mp_trades_sent", value=self.sent)]
        if self.live is not None:
            stats = self.live.stats()
            reconnects = sum(stats.reconnects.values())
            state = (f"live, {self.sent:,} sent, {stats.gaps} gaps ({stats.backfilled:,} backfilled), "
                     f"{reconnects} reconnects, {stats.malformed} malformed")
            samples += [wire.Sample(name="naive_mp_stream_reconnects", value=reconnects),
                        wire.Sample(name="naive_mp_stream_backfilled_trades", value=stats.backfilled)]
        else:
            state = self.progress.line(self._done()) if tape < len(self.spec.replay) else "ended"
        self.control.beat(wire.ProcessInfo(role="streamer", pid=os.getpid(), state=state,
                                           started_at=self.started_at), samples=samples)
        self.next_beat = time.monotonic() + HEARTBEAT_S

    def _done(self) -> int:
        """Trades of the replay behind us: whole tapes, then the offset in the current one."""
        counts = self.spec.replay_trades
        return sum(counts[: self.position["tape"]]) + self.position["offset"] if counts else self.sent

    # -- replay --------------------------------------------------------------------------

    def _replay(self) -> None:
        began = time.monotonic()
        while self.position["tape"] < len(self.spec.replay):
            index = self.position["tape"]
            tape = read_tape(self.spec.replay[index], self.spec.replay_symbols[index])
            self._stream_tape(tape)
            self.position.update(tape=index + 1, offset=0)
            self._save_position(force=True)
        took = time.monotonic() - began
        log.info("replay ended: %d trades sent in %.3f s (%.0f trades/s)", self.sent, took, self.sent / max(took, 1e-9))
        for symbol, last_seq in self.position["seq"].items():
            self.ended[symbol] = last_seq
            self._publish(symbol, wire.StreamEnded(symbol=symbol, last_seq=last_seq))
        self._announce_ends()
        self._wait_handled(dict(self.position["seq"]))

    # -- the live market ------------------------------------------------------------------

    def _live(self) -> None:
        """Publish the live market's trades for ever: in id order, none twice, none missing.

        A successor (this process killed and restarted) starts from the last id
        published, and LiveTrades backfills from there over REST first.
        """
        from naive_mp.exchange.binance_stream import LiveTrades
        where = self.spec.endpoints
        self.live = LiveTrades(self.spec.symbols, last_ids=self.position["last_ids"], api_url=where.api_url,
                               stream_url=where.stream_url, silence_s=self.spec.stream_silence_s,
                               max_age_s=self.spec.stream_max_age_s)
        self.recorder = DailyTapes(self.spec.record_dir) if self.spec.record_dir else None
        self.live.start()
        self.poller.register(self.live.fileno(), zmq.POLLIN)
        log.info("live trades of %s from %s", ", ".join(self.spec.symbols), where.stream_url)
        try:
            while True:
                self._serve(timeout_ms=200)
                for symbol, trades in self.live.take().items():
                    for first in range(0, len(trades), BATCH):
                        self._publish_live(symbol, trades[first:first + BATCH])
                self._save_position()
        finally:
            self.live.close()

    def _publish_live(self, symbol: str, trades: list) -> None:
        seq = self.position["seq"].get(symbol, 0) + 1
        self._publish(symbol, wire.TradeBatch(symbol=symbol, seq=seq, sent_ns=time.monotonic_ns(), trades=trades))
        self.position["seq"][symbol] = seq + len(trades) - 1
        self.position["last_ids"][symbol] = trades[-1].trade_id
        self.sent += len(trades)
        if self.recorder is not None:  # idempotent: what a successor publishes again is not written twice
            self.recorder.write(symbol, trades)

    def _stream_tape(self, tape) -> None:
        symbol, n = tape.symbol, len(tape)
        ids, prices, times = tape.ids.tolist(), tape.prices.tolist(), tape.times_us.tolist()
        scale = tape.price_decimals
        clock = Pacer(self.spec.speed, times[self.position["offset"]] if n else 0, ids)
        i = self.position["offset"]
        while i < n:
            skipped = self._quiet_run(symbol, prices, i, scale) if self.spec.lockstep else 0
            i += skipped
            end = i + 1 if self.spec.lockstep else clock.due(times, i, min(n, i + BATCH), self)
            trades = [wire.Trade(ids[k], _decimal(prices[k], scale), times[k]) for k in range(i, end)]
            seq = self.position["seq"].get(symbol, 0) + skipped + 1
            self.in_flight = (symbol, wire.TradeBatch(symbol=symbol, seq=seq, sent_ns=time.monotonic_ns(), trades=trades))
            self._publish(*self.in_flight)
            self.sent += len(trades)
            if self.spec.lockstep:
                self._wait_handled({symbol: seq})
            # seq and offset move together, once the batch is out (and, in lockstep, handled)
            self.position["seq"][symbol] = seq + len(trades) - 1
            i = self.position["offset"] = end
            self._save_position()
            self._serve(timeout_ms=0)

    def _quiet_run(self, symbol: str, prices: list[int], i: int, decimals: int) -> int:
        """Lockstep: how many trades from `i` on fall inside the band where nobody acts.

        Handling them would change nothing (the leader computed the band from its
        traders' states after the last event), so they are counted, not sent. The
        tape's last trade is always sent: it is the run's last price.
        """
        band = self.quiet.get(symbol)
        if band is None:
            return 0
        lo, hi = order.band_in_units(band, decimals)
        j, last = i, len(prices) - 1
        while j < last and lo < prices[j] < hi:
            j += 1
        return j - i

    def _announce_ends(self) -> None:
        for symbol, last_seq in self.ended.items():
            self.pub.send(wire.END_TOPIC + wire.encode(wire.StreamEnded(symbol=symbol, last_seq=last_seq)))

    def _publish(self, symbol: str, message) -> None:
        self.pub.send(wire.trade_topic(symbol) + wire.encode(message))

    def _wait_handled(self, seqs: dict[str, int]) -> None:
        """Until the gateway (and, where the symbol is traded, its leader) handled `seqs`."""
        for symbol, seq in seqs.items():
            roles = ["gateway"] + (["leader"] if symbol in self.spec.symbols else [])
            while any(self.handled.get((role, symbol), 0) < seq for role in roles):
                self._serve(timeout_ms=200)


# A gap in tape time longer than this between two trades is not waited for
# (at --speed 200, one time in the year 2100 in a tape of 2023 waited 38
# years; a first time of 0, 8,500): an hour without a single trade is an
# edited or broken time, or an exchange outage, and waiting for it helps
# nobody.
MAX_JUMP_US = 3600 * 10**6


class Pacer:
    """When each trade is due at `speed` times the recorded pace (None: all due now).

    A jump of more than MAX_JUMP_US of tape time between two trades, forward
    or back, is logged and the pace starts again from that trade.
    """

    def __init__(self, speed: float | None, first_time_us: int, ids: list[int] | None = None):
        self.speed = speed
        self.ids = ids  # only to name a trade in the log
        self._restart(first_time_us)

    def _restart(self, time_us: int) -> None:
        self.origin_us = time_us
        self.start = time.monotonic()
        self.last_us = time_us  # tape time of the last trade handed out

    def due(self, times: list[int], i: int, limit: int, streamer: Streamer) -> int:
        """Wait until trade i is due; return the end of the run of trades due by then."""
        if self.speed is None:
            return limit
        if _jumps(self.last_us, times[i]):
            self._skip_jump(times, i)
        while True:
            now_us = (time.monotonic() - self.start) * 1e6 * self.speed + self.origin_us
            if times[i] <= now_us:
                end = i + 1
                # a jumped-to trade starts the next run, so that due() restarts the pace on it
                while end < limit and times[end] <= now_us and not _jumps(times[end - 1], times[end]):
                    end += 1
                self.last_us = times[end - 1]
                return end
            wait_ms = max(0, int((times[i] - now_us) / self.speed / 1000))
            streamer._serve(timeout_ms=min(wait_ms, 200))

    def _skip_jump(self, times: list[int], i: int) -> None:
        jump_s = (times[i] - self.last_us) / 1e6
        trade = self.ids[i] if self.ids is not None else f"#{i + 1} of the tape"
        log.warning("trade %s: tape time jumps %+.0f s from the trade before (more than %d s): "
                    "not waited for, the pace goes on from this trade", trade, jump_s, MAX_JUMP_US // 10**6)
        self._restart(times[i])


def _jumps(before_us: int, after_us: int) -> bool:
    return abs(after_us - before_us) > MAX_JUMP_US


class Progress:
    """Position out of the total, the rate (smoothed over the last beats) and the time left."""

    def __init__(self, total: int):
        self.total = total
        self.last: tuple[float, int] | None = None
        self.rate = 0.0

    def line(self, done: int) -> str:
        now = time.monotonic()
        if self.last is not None and now > self.last[0]:
            instant = (done - self.last[1]) / (now - self.last[0])
            self.rate = instant if self.rate == 0 else 0.7 * self.rate + 0.3 * instant
        self.last = (now, done)
        if not self.total:
            return f"{done:,} sent"
        left = (self.total - done) / self.rate if self.rate > 0 else None
        eta = "-" if left is None else _duration(left)
        return f"{done:,}/{self.total:,} ({100 * done / self.total:.0f}%), {self.rate:,.0f}/s, ETA {eta}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def _decimal(units: int, decimals: int):
    from decimal import Decimal
    return Decimal(units).scaleb(-decimals)


def run(spec: wire.RunSpec) -> int:
    """Body of the forked streamer process."""
    return Streamer(spec).run()
