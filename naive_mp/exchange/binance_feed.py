"""The asyncio side of LiveTrades (binance_stream): connections, ordering, backfill.

Everything here runs in the feed's own thread and event loop. Two tasks:

- the supervisor keeps one websocket connection (python-binance's
  ReconnectingWebsocket, made to report to us) and replaces it when it
  closes, stays silent, grows too old or announces serverShutdown;
- the consumer puts the trades in id order per symbol: a duplicate is
  dropped, a hole is filled from REST historicalTrades before the trade that
  revealed it is handed over; after a connection was lost (when no newer
  trade may come soon to reveal a hole) it asks REST what came meanwhile.

Frames are decoded as they are read and go to our own queue (bounded by
max_backlog, beyond which trades are shed and fetched again from REST), so
python-binance's 100-message queue is never used (nor overflows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time

import aiohttp
import msgspec
from binance import AsyncClient
from binance.exceptions import BinanceAPIException, BinanceRequestException

from naive_mp import wire
from naive_mp.exchange.binance_frames import Malformed, ServerShutdown, TradeEvent, decode_frame, rest_trades
from naive_mp.exchange.binance_socket import Throttle, TradeSocket, backoff_delay

log = logging.getLogger("naive_mp.exchange.binance_stream")

REASONS = ("closed", "silent", "max_age", "server_shutdown")
COUNTERS = ("messages", "live", "backfilled", "duplicates", "malformed", "gaps", "missing", "shed",
            "connect_failures", "rest_calls", "rest_errors")
MAX_BATCH = 4096  # trades sequenced (and handed over) at once when many are waiting
EMPTY_TRIES = 5  # REST answers without the trades the stream showed, before they count as missing
CATCH_UP = object()  # in the inbox: fetch from REST whatever came after the last ids
RETIRE_S = 5.0  # longest overlap of a connection going away on notice with its successor
REST_ERRORS = (BinanceAPIException, BinanceRequestException, aiohttp.ClientError, asyncio.TimeoutError, OSError,
               msgspec.ValidationError)


@dataclasses.dataclass(frozen=True)
class Tuning:
    """LiveTrades' parameters (see its docstring); URLs already normalised."""

    api_url: str
    stream_url: str
    silence_s: float
    max_age_s: float
    connect_timeout_s: float
    rest_timeout_s: float
    backoff_s: float
    backoff_max_s: float
    page: int
    max_backlog: int


class StreamStats(msgspec.Struct, frozen=True, kw_only=True):
    """The feed's counters since it started."""

    messages: int  # websocket frames received
    live: int  # trades handed over as the stream brought them
    backfilled: int  # trades handed over from REST (holes, and the start from a last id)
    duplicates: int  # trades seen again (overlapping connections) and dropped
    malformed: int  # frames that are neither a trade of ours nor serverShutdown: skipped
    gaps: int  # holes in trade ids the stream revealed
    missing: int  # ids REST never had (not expected on Binance: ids are consecutive)
    shed: int  # trades dropped on arrival, the backlog being full: fetched again from REST
    connect_failures: int
    rest_calls: int
    rest_errors: int
    reconnects: dict[str, int]  # why -> how many: closed, silent, max_age, server_shutdown
    connected: bool
    last_ids: dict[str, int | None]  # the last id handed over, per symbol


class _Conn:
    """One websocket connection, and what the supervisor watches of it."""

    def __init__(self, feed: Feed, number: int):
        self.feed, self.number = feed, number
        self.opened = self.last_seen = time.monotonic()
        self.got_message = self.ended = self.shutdown = False
        self.error = ""
        self.first_ids: dict[str, int] = {}  # symbol -> id of the first trade it brought
        path = "streams=" + "/".join(f"{s.lower()}@trade" for s in feed.last)
        self.sock = TradeSocket(self, feed.tuning.stream_url, path, feed.tuning.connect_timeout_s)

    def on_frame(self, frame) -> None:
        self.last_seen = time.monotonic()
        if not self.got_message:
            self.got_message = True
            self.feed.failures = 0  # a connection that delivers ends a run of failures
        try:
            self.feed.on_event(self, decode_frame(frame))
        except Exception as exc:  # a bug of ours, not a bad frame: python-binance would only reconnect
            self.feed.fail(exc)

    def on_error(self, error: dict) -> None:
        if not self.error:  # the first one says why; the others follow from it
            self.error = f"{error.get('type')}: {error.get('m')}"

    def on_end(self) -> None:
        self.ended = True
        self.feed.woken.set()


class Feed:
    """The feed: `run()` until cancelled; `hand_over(dict)` receives the ordered trades."""

    def __init__(self, symbols: list[str], last_ids: dict[str, int], hand_over, tuning: Tuning):
        self.last: dict[str, int | None] = {s: last_ids.get(s) for s in symbols}
        self.hand_over = hand_over
        self.tuning = tuning
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.reconnects = dict.fromkeys(REASONS, 0)
        self.conn: _Conn | None = None
        self.failures = 0  # consecutive failed connections: the back-off grows with them
        self.numbers = itertools.count(1)
        self.closing: set[asyncio.Task] = set()
        self.shed: dict[str, int] = {}  # symbol -> the newest trade id shed
        self.throttles = {kind: Throttle() for kind in ("malformed", "connect", "rest")}

    def stats(self) -> StreamStats:
        """Thread-safe enough: every dict keeps its keys, so copying one races with nothing."""
        conn = self.conn
        return StreamStats(**self.counts, reconnects=dict(self.reconnects),
                           connected=conn is not None and not conn.ended, last_ids=dict(self.last))

    async def run(self) -> None:
        self.inbox: asyncio.Queue[TradeEvent | object] = asyncio.Queue()  # trades, and CATCH_UP
        self.woken = asyncio.Event()
        self.failed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.client = AsyncClient(requests_params={"timeout": self.tuning.rest_timeout_s})
        self.client.API_URL = self.tuning.api_url  # the documented way to point it elsewhere
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._supervise())
                group.create_task(self._consume())
                group.create_task(self._watch())
        finally:
            await self._shut()

    def fail(self, exc: Exception) -> None:
        """Stop the feed on a bug found in a read loop: LiveTrades.take() raises it."""
        if not self.failed.done():
            self.failed.set_exception(exc)

    async def _watch(self) -> None:
        await self.failed

    async def _shut(self) -> None:
        if self.conn is not None:
            await self._close(self.conn)
        for task in self.closing:
            task.cancel()
        if self.closing:
            await asyncio.wait(self.closing, timeout=5)
        await self.client.close_connection()

    # -- frames, in the read loops ------------------------------------------------------

    def on_event(self, conn: _Conn, event) -> None:
        self.counts["messages"] += 1
        if type(event) is TradeEvent and event.s in self.last:
            if event.s not in conn.first_ids:
                conn.first_ids[event.s] = event.t
            if self.inbox.qsize() < self.tuning.max_backlog:
                self.inbox.put_nowait(event)
            else:  # memory stays bounded while REST is slow: what is shed here is fetched again later
                self.counts["shed"] += 1
                self.shed[event.s] = max(event.t, self.shed.get(event.s, 0))
        elif type(event) is ServerShutdown:
            conn.shutdown = True
            self.woken.set()
        else:
            if type(event) is TradeEvent:
                event = Malformed(error=f"a trade of {event.s}, which is not streamed", frame=str(event.t))
            self.counts["malformed"] += 1
            self.throttles["malformed"].log(logging.WARNING, "malformed message skipped: %s: %s",
                                            event.error, event.frame)

    # -- the supervisor: one healthy connection at all times -----------------------------

    async def _supervise(self) -> None:
        await self._connect(None)
        tick = min(1.0, self.tuning.silence_s / 4, self.tuning.max_age_s / 4)
        while True:
            try:
                await asyncio.wait_for(self.woken.wait(), tick)
            except asyncio.TimeoutError:
                pass
            self.woken.clear()
            reason = self._verdict(time.monotonic())
            if reason is not None:
                await self._connect(reason)

    def _verdict(self, now: float) -> str | None:
        """Why the current connection must be replaced, or None."""
        conn = self.conn
        if conn.ended:
            return "closed"
        if conn.shutdown:
            return "server_shutdown"
        if now - conn.last_seen > self.tuning.silence_s:
            return "silent"
        if now - conn.opened > self.tuning.max_age_s:
            return "max_age"
        return None

    async def _connect(self, reason: str | None) -> None:
        """Replace the current connection (if any) with a new one, for `reason`."""
        old = self.conn
        if old is not None:
            self.reconnects[reason] += 1
            if not old.got_message:
                self.failures += 1
            log.warning("replacing stream connection #%d: %s%s", old.number, reason,
                        f" ({old.error})" if old.error else "")
        self.conn = await self._open()
        if old is not None and (reason in ("closed", "silent") or old.ended):
            # Trades may have been missed meanwhile, and on a quiet market no new trade may come
            # soon to reveal the hole: ask REST now (after what the old connection brought).
            self.inbox.put_nowait(CATCH_UP)
        if old is not None:
            # a connection going away on notice still streams: it is closed once the new one overlaps it
            retire = self._retire(old, self.conn) if reason in ("max_age", "server_shutdown") else self._close(old)
            task = asyncio.create_task(retire)
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)

    async def _open(self) -> _Conn:
        """A new open connection: tries for ever, with back-off after failures."""
        while True:
            if self.failures:
                await asyncio.sleep(backoff_delay(self.failures - 1, self.tuning.backoff_s, self.tuning.backoff_max_s))
            conn = _Conn(self, next(self.numbers))
            try:
                await conn.sock.connect()
            except Exception as exc:  # refused, timed out, unreachable...: try again, for ever
                self.failures += 1
                self.counts["connect_failures"] += 1
                self.throttles["connect"].log(logging.WARNING, "cannot connect to %s: %r",
                                              self.tuning.stream_url, exc)
                continue
            log.info("stream connection #%d open (%s)", conn.number, ", ".join(self.last))
            return conn

    async def _retire(self, old: _Conn, new: _Conn) -> None:
        """Make-before-break: close `old` once every trade before the first that `new` brought
        is handed over (what `old` still buffers would be lost), or after RETIRE_S."""
        deadline = time.monotonic() + RETIRE_S
        try:
            while not old.ended and time.monotonic() < deadline and not self._overlaps(new):
                await asyncio.sleep(0.01)
            if not self._overlaps(new):  # a quiet symbol, or `old` died first: ask REST to be sure
                self.inbox.put_nowait(CATCH_UP)
        finally:  # cancelled too (the feed stopping): it is closed all the same
            await self._close(old)

    def _overlaps(self, new: _Conn) -> bool:
        firsts = new.first_ids
        return bool(firsts) and all(self.last[s] is not None and self.last[s] >= first - 1
                                    for s, first in firsts.items())

    async def _close(self, conn: _Conn) -> None:
        try:
            await asyncio.wait_for(conn.sock.close(), 5)
        except Exception as exc:  # it is going away anyway
            log.debug("closing stream connection #%d: %r", conn.number, exc)

    # -- the consumer: ids in order, holes filled -----------------------------------------

    async def _consume(self) -> None:
        await self._catch_up()  # a previous streamer published up to last_ids: go on from there
        while True:
            batch = [await self.inbox.get()]
            while len(batch) < MAX_BATCH and not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
            await self._sequence(batch)
            if self.inbox.empty():
                await self._refetch_shed()

    async def _refetch_shed(self) -> None:
        """Trades shed at the end of a burst: no newer trade may come soon to reveal the hole."""
        while self.shed:
            symbol, newest = self.shed.popitem()
            if self.last[symbol] is not None and self.last[symbol] < newest:
                self.counts["gaps"] += 1
                await self._fill(symbol, newest + 1)

    async def _catch_up(self) -> None:
        """Fetch whatever REST has after the last id of each symbol that has one."""
        for symbol, last in self.last.items():
            if last is not None:
                await self._fill(symbol, None)

    async def _sequence(self, batch: list[TradeEvent | object]) -> None:
        out: dict[str, list[wire.Trade]] = {}
        for event in batch:
            if event is CATCH_UP:
                self.hand_over(out)
                out = {}
                await self._catch_up()
                continue
            last = self.last[event.s]
            if last is not None and event.t <= last:
                self.counts["duplicates"] += 1
                continue
            if last is not None and event.t > last + 1:
                self.hand_over(out)  # what came before the hole goes first
                out = {}
                self.counts["gaps"] += 1
                log.info("%s: trades %d..%d missed on the stream, fetching them", event.s, last + 1, event.t - 1)
                await self._fill(event.s, event.t)
            out.setdefault(event.s, []).append(event.trade())
            self.last[event.s] = event.t
            self.counts["live"] += 1
        self.hand_over(out)

    async def _fill(self, symbol: str, upto: int | None) -> None:
        """Hand over trades last+1 .. upto-1 from REST (upto None: up to the newest)."""
        empty = 0
        while upto is None or self.last[symbol] + 1 < upto:
            first = self.last[symbol] + 1
            page = await self._page(symbol, first)
            trades = [t.trade() for t in page if t.trade_id >= first and (upto is None or t.trade_id < upto)]
            if trades:
                self._backfilled(symbol, first, trades)
                empty = 0
            elif upto is None:
                return  # nothing after `first` yet: caught up
            elif page:  # REST goes on at `upto`: the ids before it never existed
                self._skip(symbol, upto - 1, "absent from REST")
            else:  # REST does not have them yet
                empty += 1
                if empty > EMPTY_TRIES:
                    self._skip(symbol, upto - 1, "still absent from REST")
                else:
                    await asyncio.sleep(backoff_delay(empty - 1, self.tuning.backoff_s, self.tuning.backoff_max_s))
            if upto is None and len(page) < self.tuning.page:
                return

    def _backfilled(self, symbol: str, first: int, trades: list[wire.Trade]) -> None:
        expected = first
        for trade in trades:
            self.counts["missing"] += trade.trade_id - expected
            expected = trade.trade_id + 1
        self.counts["backfilled"] += len(trades)
        self.last[symbol] = trades[-1].trade_id
        self.hand_over({symbol: trades})

    def _skip(self, symbol: str, to_id: int, why: str) -> None:
        log.error("%s: trades %d..%d %s: going on without them", symbol, self.last[symbol] + 1, to_id, why)
        self.counts["missing"] += to_id - self.last[symbol]
        self.last[symbol] = to_id

    async def _page(self, symbol: str, from_id: int):
        """One historicalTrades page from `from_id`, asking again (with back-off) until it comes."""
        for attempt in itertools.count():
            self.counts["rest_calls"] += 1
            try:
                raw = await self.client.get_historical_trades(symbol=symbol, fromId=from_id, limit=self.tuning.page)
                return rest_trades(raw)
            except REST_ERRORS as exc:
                self.counts["rest_errors"] += 1
                self.throttles["rest"].log(logging.WARNING, "historicalTrades %s from %d failed: %r",
                                           symbol, from_id, exc)
                wait = backoff_delay(attempt, self.tuning.backoff_s, self.tuning.backoff_max_s)
                await asyncio.sleep(max(wait, _retry_after(exc)))


def _retry_after(exc: Exception) -> float:
    """Seconds Binance asked us to wait (429/418 Retry-After), else 0."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return min(float(headers.get("Retry-After", 0)), 600.0)
    except ValueError:
        return 0.0
