"""A fake Binance on 127.0.0.1, for tests that run the real python-binance client.

An aiohttp server on a random free port, in a background thread, speaking
the real protocol:

- websocket trade streams, raw `/ws/<symbol>@trade` and combined
  `/stream?streams=a@trade/b@trade` (`{"stream": ..., "data": ...}`);
- REST `/api/v3/ping`, `/time`, `/exchangeInfo` (symbol= or symbols=[...]),
  `/historicalTrades` (fromId, limit <= 1000), `/trades`, with Binance's
  JSON error bodies (`{"code": -1121, "msg": "Invalid symbol."}`).

A test gives it trades per symbol, then "prints" them: a printed trade is
visible on REST and sent to every connection that streams its symbol, now
(`print_trades`) or at a pace (`play`). Faults on demand: `drop` the
connections, `refuse` new ones for a while, `silence` them (open, pings
answered, nothing sent), `server_shutdown`, cut every connection after
`max_age_s` (Binance's 24 h cut, scaled down), bursts, `send_raw` malformed
frames, failing or slow REST. `printed(symbol)` is everything it printed: what
a consumer must end up with.

    with FakeBinance({"BTCUSDT": trades}) as fake:
        client.API_URL = fake.api_url + "/api"     # REST
        stream_url = fake.stream_url               # ws://127.0.0.1:PORT/
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import json
import threading
import time
from pathlib import Path

from aiohttp import web

INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}


@dataclasses.dataclass(frozen=True)
class FakeTrade:
    """A trade of the fake market (prices and quantities as Binance writes them)."""

    id: int
    price: str
    qty: str
    time_ms: int
    buyer_maker: bool = False

    def event(self, symbol: str) -> dict:
        """The `<symbol>@trade` event."""
        return {"e": "trade", "E": self.time_ms + 1, "s": symbol, "t": self.id, "p": self.price,
                "q": self.qty, "T": self.time_ms, "m": self.buyer_maker, "M": True}

    def rest(self) -> dict:
        """The trade as historicalTrades lists it."""
        quote = f"{float(self.price) * float(self.qty):.8f}"
        return {"id": self.id, "price": self.price, "qty": self.qty, "quoteQty": quote,
                "time": self.time_ms, "isBuyerMaker": self.buyer_maker, "isBestMatch": True}


def trades_from_jsonl(path: str | Path, limit: int | None = None) -> list[FakeTrade]:
    """The trades of a capture of combined-stream frames (one JSON frame a line)."""
    trades = []
    with open(path) as lines:
        for line in lines:
            data = json.loads(line)["data"]
            trades.append(FakeTrade(data["t"], data["p"], data["q"], data["T"], data["m"]))
            if limit is not None and len(trades) >= limit:
                break
    return trades


def synthetic_trades(first_id: int, n: int, start_ms: int = 1_723_161_255_000) -> list[FakeTrade]:
    """`n` made-up trades with consecutive ids from `first_id`."""
    return [FakeTrade(first_id + i, f"{2600 + (i % 50) / 100:.8f}", "0.01000000", start_ms + i, i % 2 == 0)
            for i in range(n)]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll `predicate` until true (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class _Conn:
    """One stream connection the fake accepted."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, symbols: set[str], combined: bool):
        self.ws, self.request, self.symbols, self.combined = ws, request, symbols, combined
        self.opened = time.monotonic()
        self.silent = False
        self.alive = True
        self.timer: asyncio.TimerHandle | None = None

    def frame(self, stream: str, event: dict) -> str:
        return json.dumps({"stream": stream, "data": event} if self.combined else event, separators=(",", ":"))


class FakeBinance:
    """See the module docstring. All state lives in the server's thread; methods are thread-safe."""

    def __init__(self, trades: dict[str, list[FakeTrade]] | None = None, exchange_info: dict | None = None,
                 *, max_age_s: float | None = None, shutdown_grace_s: float = 0.3):
        self.exchange_info = exchange_info
        self.max_age_s = max_age_s
        self.shutdown_grace_s = shutdown_grace_s
        self._queued = {s: collections.deque(t) for s, t in (trades or {}).items()}
        self._printed: dict[str, list[FakeTrade]] = {s: [] for s in self._queued}
        self._conns: list[_Conn] = []
        self._refuse_until = 0.0
        self._rest_failures: list[int] = []  # HTTP statuses of the next REST answers
        self.rest_delay_s = 0.0
        self.connections = 0  # stream connections accepted
        self.refused = 0
        self.closed_by_server: collections.Counter = collections.Counter()  # why: drop, cut, shutdown
        self.rest_calls: collections.Counter = collections.Counter()  # endpoint -> calls
        self._player: asyncio.Future | None = None

    # -- life --------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakebinance", daemon=True)
        self._thread.start()
        self._call(self._start_server())
        return self

    def stop(self) -> None:
        if self._player is not None:
            self._player.cancel()
        self._call(self._stop_server())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The REST root (python-binance's API_URL is this + "/api")."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_server(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/{name}", self._stream)
        app.router.add_get("/stream", self._stream)
        for name, handler in (("ping", self._ping), ("time", self._time), ("exchangeInfo", self._exchange_info),
                              ("historicalTrades", self._historical_trades), ("trades", self._recent_trades)):
            app.router.add_get(f"/api/v3/{name}", self._rest(name, handler))
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop_server(self) -> None:
        for conn in list(self._conns):
            _abort(conn)
        await self._runner.cleanup()

    # -- the market ------------------------------------------------------------------

    def add_trades(self, symbol: str, trades: list[FakeTrade]) -> None:
        """More trades to print for `symbol`."""
        def add():
            self._queued.setdefault(symbol, collections.deque()).extend(trades)
            self._printed.setdefault(symbol, [])
        self._call(_as_coro(add))

    def print_trades(self, symbol: str, n: int = 1) -> int:
        """Print the next `n` trades of `symbol` now, back to back (a burst when n is big)."""
        return self._call(self._print(symbol, n), timeout=60)

    def play(self, interval_s: float = 0.002, per_tick: int = 1) -> None:
        """Print every queued trade, `per_tick` per symbol every `interval_s`, in the background."""
        self._player = asyncio.run_coroutine_threadsafe(self._play(interval_s, per_tick), self._loop)

    def wait_played(self, timeout: float = 30.0) -> None:
        self._player.result(timeout)

    def printed(self, symbol: str) -> list[FakeTrade]:
        """Every trade of `symbol` printed so far, in id order (also once stopped)."""
        if not self._thread.is_alive():
            return list(self._printed.get(symbol, []))
        return self._call(self._copy(self._printed.get(symbol, [])))

    def queued(self, symbol: str) -> int:
        return len(self._queued.get(symbol, ()))

    async def _copy(self, items: list) -> list:
        return list(items)

    async def _play(self, interval_s: float, per_tick: int) -> None:
        while any(self._queued.values()):
            for symbol in [s for s, q in self._queued.items() if q]:
                await self._print(symbol, per_tick)
            await asyncio.sleep(interval_s)

    async def _print(self, symbol: str, n: int) -> int:
        queue = self._queued.get(symbol, collections.deque())
        batch = [queue.popleft() for _ in range(min(n, len(queue)))]
        self._printed[symbol].extend(batch)
        stream = f"{symbol.lower()}@trade"
        for trade in batch:
            await self._send(stream, trade.event(symbol), symbol)
        return len(batch)

    async def _send(self, stream: str, event: dict, symbol: str | None = None, raw: str | bytes | None = None):
        for conn in list(self._conns):
            if not conn.alive or conn.silent or (symbol is not None and symbol not in conn.symbols):
                continue
            try:
                if isinstance(raw, bytes):
                    await conn.ws.send_bytes(raw)
                else:
                    await conn.ws.send_str(raw if raw is not None else conn.frame(stream, event))
            except Exception:  # the peer went away: its handler cleans up
                conn.alive = False

    # -- faults ------------------------------------------------------------------------

    def open_connections(self) -> int:
        return sum(1 for c in self._conns if c.alive)

    def drop(self) -> int:
        """Abort every stream connection mid-stream (no close frame), as a network cut does."""
        def drop_all():
            conns = [c for c in self._conns if c.alive]
            for conn in conns:
                _abort(conn)
            self.closed_by_server["drop"] += len(conns)
            return len(conns)
        return self._call(_as_coro(drop_all))

    def refuse(self, seconds: float) -> None:
        """Answer new stream connections with HTTP 503 for `seconds`."""
        self._refuse_until = time.monotonic() + seconds

    def silence(self) -> None:
        """Send nothing more on the open connections, but keep them open (and answer their pings)."""
        def silence_all():
            for conn in self._conns:
                conn.silent = True
        self._call(_as_coro(silence_all))

    def server_shutdown(self) -> None:
        """Send `serverShutdown` on every connection, and close them `shutdown_grace_s` later."""
        self._call(self._shutdown())

    async def _shutdown(self) -> None:
        event = {"e": "serverShutdown", "E": int(time.time() * 1000)}
        await self._send("!serverShutdown", event)
        for conn in [c for c in self._conns if c.alive]:
            self._loop.call_later(self.shutdown_grace_s, lambda c=conn: self._loop.create_task(self._close(c, "shutdown")))

    def send_raw(self, frames: list[str | bytes]) -> None:
        """Send these frames as they are on every (not silent) connection."""
        async def send_all():
            for frame in frames:
                await self._send("", {}, raw=frame)
        self._call(send_all())

    def rest_fail(self, n: int, status: int = 503) -> None:
        """Answer the next `n` REST requests with an error (`status`, a JSON body)."""
        self._rest_failures.extend([status] * n)

    async def _close(self, conn: _Conn, why: str) -> None:
        if conn.alive:
            conn.alive = False
            self.closed_by_server[why] += 1
            await conn.ws.close(code=1001, message=why.encode())

    # -- websocket ---------------------------------------------------------------------

    async def _stream(self, request: web.Request):
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            return web.json_response({"code": -1003, "msg": "Too many connection attempts."}, status=503)
        if "name" in request.match_info:
            names, combined = [request.match_info["name"]], False
        else:
            names, combined = request.query.get("streams", "").split("/"), True
        symbols = {n.split("@")[0].upper() for n in names if n.endswith("@trade")}
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Conn(ws, request, symbols, combined)
        self._conns.append(conn)
        self.connections += 1
        if self.max_age_s is not None:
            conn.timer = self._loop.call_later(self.max_age_s, lambda: self._loop.create_task(self._close(conn, "cut")))
        try:
            async for _ in ws:  # nothing a client says matters; reading answers its pings
                pass
        finally:
            conn.alive = False
            self._conns.remove(conn)
            if conn.timer is not None:
                conn.timer.cancel()
        return ws

    # -- REST --------------------------------------------------------------------------

    def _rest(self, name: str, handler):
        async def serve(request: web.Request):
            self.rest_calls[name] += 1
            if self.rest_delay_s:
                await asyncio.sleep(self.rest_delay_s)
            if self._rest_failures:
                status = self._rest_failures.pop(0)
                return web.json_response({"code": -1001, "msg": "Internal error; unable to process your request. "
                                          "Please try again."}, status=status)
            return await handler(request)
        return serve

    async def _ping(self, request):
        return web.json_response({})

    async def _time(self, request):
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request):
        info = self.exchange_info or {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": []}
        by_name = {s["symbol"]: s for s in info["symbols"]}
        if "symbol" in request.query:
            wanted = [request.query["symbol"]]
        elif "symbols" in request.query:
            try:
                wanted = json.loads(request.query["symbols"])
            except ValueError:
                return _error(-1100, "Illegal characters found in parameter 'symbols'; legal range is "
                              "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.")
        else:
            wanted = list(by_name)
        if any(name not in by_name for name in wanted):
            return _error(**INVALID_SYMBOL)
        return web.json_response(dict(info, serverTime=int(time.time() * 1000),
                                      symbols=[by_name[name] for name in wanted]))

    def _limit(self, request) -> int | None:
        try:
            limit = int(request.query.get("limit", 500))
        except ValueError:
            return None
        return limit if 1 <= limit <= 1000 else None

    async def _historical_trades(self, request):
        symbol = request.query.get("symbol")
        if not symbol:
            return _error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in self._printed:
            return _error(**INVALID_SYMBOL)
        limit = self._limit(request)
        if limit is None:
            return _error(-1130, "Data sent for parameter 'limit' is not valid.")
        printed = self._printed[symbol]
        if "fromId" in request.query:
            start = bisect.bisect_left(printed, int(request.query["fromId"]), key=lambda t: t.id)
            page = printed[start:start + limit]
        else:
            page = printed[-limit:]
        return web.json_response([t.rest() for t in page])

    async def _recent_trades(self, request):
        symbol = request.query.get("symbol")
        if symbol not in self._printed:
            return _error(**INVALID_SYMBOL)
        limit = self._limit(request) or 500
        return web.json_response([t.rest() for t in self._printed[symbol][-limit:]])


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _abort(conn: _Conn) -> None:
    conn.alive = False
    if conn.request.transport is not None:
        conn.request.transport.abort()


async def _as_coro(function):
    return function()
