"""Live Binance trades for the streamer: per symbol in trade-id order, none twice, none missing.

`LiveTrades` runs python-binance's asyncio websocket (one combined stream of
`<symbol>@trade` for all the symbols) in a background thread, and hands the
trades over through a pipe the streamer's zmq poller waits on:

    live = LiveTrades(["BTCUSDT"], last_ids={"BTCUSDT": 3735683258},
                      api_url=settings_api_url, stream_url=settings_stream_url)
    live.start()                                   # after the fork: it starts a thread
    poller.register(live.fileno(), zmq.POLLIN)
    ...
    for sock, _ in poller.poll(timeout_ms):
        if sock == live.fileno():
            for symbol, trades in live.take().items():   # {symbol: [wire.Trade, ...]}
                publish(symbol, trades)
    live.stats()                                   # counters, for the heartbeat / metrics
    live.close()

Ordering: the trade ids of each symbol are consecutive, so a hole means
trades were missed (a reconnect, a dropped message): the missing ones are
fetched from REST `historicalTrades` (1,000 a call, until caught up) before
any newer trade is handed over; a trade seen again (two connections
overlapping) is dropped. Given the last id a previous streamer published,
it backfills from there first.

The connection's life is ours, not python-binance's (which gives up after 5
reconnects, never notices a silent connection, and loses a socket to a
100-message queue overflow): a connection that closes, stays silent for
`silence_s`, reaches `max_age_s` (Binance cuts at 24 h) or announces
`serverShutdown` is replaced, with exponential back-off and jitter between
failed attempts, for ever. The last two are replaced make-before-break.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from naive_mp import wire
from naive_mp.exchange.binance_feed import Feed, StreamStats, Tuning
from naive_mp.exchange.binance_urls import API_URL, STREAM_URL, SYMBOL, rest_root, stream_root
from naive_mp.exchange.errors import LiveTradesError

log = logging.getLogger("naive_mp.exchange.binance_stream")




class _Handoff:
    """Trades from the feed's thread to the caller's: lists under a lock, plus a pipe that
    holds one byte while there is something to take, so that a poller can wait on it."""

    def __init__(self):
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self._pending: dict[str, list[wire.Trade]] = {}
        self._armed = False

    def fileno(self) -> int:
        return self._read

    def put(self, trades: dict[str, list[wire.Trade]]) -> None:
        if not trades:
            return
        with self._lock:
            for symbol, more in trades.items():
                if symbol in self._pending:
                    self._pending[symbol].extend(more)
                else:
                    self._pending[symbol] = more
            self._arm()

    def signal(self) -> None:
        """Wake the poller with nothing to take (the feed stopped)."""
        with self._lock:
            self._arm()

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            os.write(self._write, b"\0")

    def take(self) -> dict[str, list[wire.Trade]]:
        with self._lock:
            pending, self._pending = self._pending, {}
            if self._armed:
                self._armed = False
                try:
                    os.read(self._read, 64)
                except BlockingIOError:
                    pass
        return pending

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class LiveTrades:
    """The live trade source: see the module docstring for how to drive it.

    symbols: upper case ("BTCUSDT"). last_ids: the last trade id already
    published per symbol (backfilled from the next one on); a symbol without
    one starts with the first trade the stream brings. api_url, stream_url:
    Binance's REST and stream base URLs ([binance] api_url / stream_url).
    silence_s: no message for that long means a dead connection. max_age_s:
    reconnect before Binance's 24 h cut. backoff_s, backoff_max_s: first and
    largest wait between failed attempts (connect, REST). page: trades per
    historicalTrades call (Binance allows 1,000). max_backlog: trades
    received but not yet ordered (while a hole is fetched) kept at most;
    beyond, they are shed and fetched again from REST.
    """

    def __init__(self, symbols, *, last_ids: dict[str, int] | None = None, api_url: str = API_URL,
                 stream_url: str = STREAM_URL, silence_s: float = 60.0, max_age_s: float = 23.5 * 3600,
                 connect_timeout_s: float = 10.0, rest_timeout_s: float = 10.0, backoff_s: float = 0.5,
                 backoff_max_s: float = 30.0, page: int = 1000, max_backlog: int = 200_000):
        symbols = list(dict.fromkeys(symbols))
        bad = [s for s in symbols if not SYMBOL.fullmatch(s)]
        if not symbols or bad:
            raise ValueError(f"symbols must be upper-case Binance symbols, got {bad or symbols!r}")
        unknown = set(last_ids or {}) - set(symbols)
        if unknown:
            raise ValueError(f"last_ids names symbols not streamed: {', '.join(sorted(unknown))}")
        self.tuning = Tuning(api_url=rest_root(api_url), stream_url=stream_root(stream_url), silence_s=silence_s,
                             max_age_s=max_age_s, connect_timeout_s=connect_timeout_s, rest_timeout_s=rest_timeout_s,
                             backoff_s=backoff_s, backoff_max_s=backoff_max_s, page=page, max_backlog=max_backlog)
        self._handoff = _Handoff()
        self._feed = Feed(symbols, dict(last_ids or {}), self._handoff.put, self.tuning)
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._closed = False

    def start(self) -> LiveTrades:
        """Start the feed's thread (call it in the process that will use it: threads do not survive a fork)."""
        if self._thread is not None:
            raise RuntimeError("LiveTrades already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="binance-trades", daemon=True)
        self._thread.start()
        return self

    def fileno(self) -> int:
        """Readable when `take()` has trades (or an error) for you: register it in your poller."""
        return self._handoff.fileno()

    def take(self) -> dict[str, list[wire.Trade]]:
        """The trades since the last call, per symbol in id order ({} if none).

        Raises LiveTradesError once everything was taken if the feed stopped on an error.
        """
        trades = self._handoff.take()
        if not trades and self._error is not None:
            raise LiveTradesError(f"the live trade feed stopped: {self._error!r}") from self._error
        return trades

    def stats(self):
        """A snapshot of the counters (a `StreamStats`)."""
        return self._feed.stats()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the feed (closing its connections) and release the pipe. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._cancel)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the live trade feed did not stop within %.1f s", timeout)
                return  # its thread may still write to the pipe: leave it open
        self._handoff.close()

    def __enter__(self) -> LiveTrades:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the feed's thread -------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._feed.run())
        try:
            self._loop.run_until_complete(self._task)
            self._error = RuntimeError("the feed returned")  # it never should
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # a bug: reported to the caller by take()
            log.exception("live trade feed failed")
            self._error = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) and exc.exceptions else exc
        finally:
            self._handoff.signal()  # so that the caller's poller wakes and take() raises
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


__all__ = ["API_URL", "STREAM_URL", "LiveTrades", "LiveTradesError", "StreamStats", "rest_root", "stream_root"]
