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

It is also one spot account (`api_key`, `api_secret`, `balances`, `fee`):

- signed REST, HMAC-SHA256 over totalParams (query string + body) as Binance
  checks it, with `X-MBX-APIKEY` (-2015, 401), signature (-1022) and
  `timestamp` (-1021: older than `recvWindow`, or more than 1 s ahead, of the
  fake's clock `time.time()*1000 + clock_offset_ms`) checks:
  `POST/GET/DELETE /api/v3/order` (LIMIT GTC only; exchangeInfo filters give
  -1013, a client id of an open order -2010 "Duplicate order sent.", short
  balance -2010; unknown order -2013 / -2011), `GET /api/v3/openOrders`,
  `/account`, `/myTrades`; every REST answer carries `X-MBX-USED-WEIGHT-1M`,
  order placements `X-MBX-ORDER-COUNT-10S` and `-1D`;
- matching: each printed trade fills the open orders of its symbol it crosses
  (BUY: trade price <= limit, SELL: >=), at their limit price, oldest first;
  the whole rest, or with `partial=True` at most the trade's quantity (shared
  by the orders it crosses). No fill at placement: the fake has no book.
  Commission `fee` of the base bought or of the quote got for a sale, rounded
  to 8 decimals. `fill(client_order_id, qty)` fills without a trade;
  `cancel_by_hand(client_order_id)` cancels as the web UI does;
- the WS-API user data stream `ws_api_url` (`/ws-api/v3`): `ping`, `time`,
  `userDataStream.subscribe.signature` (apiKey, timestamp, signature over the
  sorted params), `userDataStream.unsubscribe`; then `{"subscriptionId": N,
  "event": ...}` with `executionReport` and `outboundAccountPosition`.

Account faults on demand: `drop_user_streams` (abort the WS-API connections),
`silence_user_streams` (they stay open but get nothing, and neither their
pings nor their requests are answered; events meanwhile are lost for them;
a close from the client still closes), `lose_reply` (the next order placements
are booked but answered 503 -1007, or the connection closed with no answer;
optionally the order stays invisible to GET order, openOrders and DELETE for
`invisible_s`; the user stream reports it at once), `reject_next` (errors, nothing booked), `rate_limit` (429
-1003 + Retry-After on the next signed calls), `ban` (418 -1003 for a while),
`skew_clock`, `slow_orders` (answers of placements come late, booked at once).
For tests: `orders()`, `open_orders()`, `order(id)`, `my_trades(symbol)`,
`account_balances()`, `subscriptions()`, and the counters `order_posts`,
`subscribes_total`, `rest_log`.

    with FakeBinance({"BTCUSDT": trades}) as fake:
        client.API_URL = fake.api_url + "/api"     # REST
        stream_url = fake.stream_url               # ws://127.0.0.1:PORT/
        user_stream = fake.ws_api_url              # ws://127.0.0.1:PORT/ws-api/v3
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import hashlib
import hmac
import json
import secrets
import string
import threading
import time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
# exchangeInfo of one made-up symbol, on a 0.0001 tick and a 0.01 step, for tests of the whole tree
TESTUSDT_INFO = {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": [
    {"symbol": "TESTUSDT", "status": "TRADING", "baseAsset": "TEST", "quoteAsset": "USDT", "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.0001", "maxPrice": "1000.0000", "tickSize": "0.0001"},
        {"filterType": "LOT_SIZE", "minQty": "0.01", "maxQty": "100000.00", "stepSize": "0.01"},
        {"filterType": "NOTIONAL", "minNotional": "1.00", "applyMinToMarket": True}]}]}
BAD_KEY = (-2015, "Invalid API-key, IP, or permissions for action.", 401)
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.", 400)
BAD_TIMESTAMP = (-1021, "Timestamp for this request is outside of the recvWindow.", 400)
LOST = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
TOO_MANY = ("Too many requests; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.")
BANNED = ("Way too many requests; IP(127.0.0.1) banned until {}. "
          "Please use WebSocket Streams for live updates to avoid bans.")
QUOTE_SUFFIXES = ("USDT", "BUSD", "BTC", "ETH", "BNB")
ORDER_PARAMS = {"symbol", "side", "type", "timeInForce", "quantity", "price", "newClientOrderId",
                "newOrderRespType", "selfTradePreventionMode", "timestamp", "recvWindow", "signature"}
WEIGHTS = {("GET", "order"): 4, ("GET", "openOrders"): 6, ("GET", "account"): 20, ("GET", "myTrades"): 20,
           ("GET", "exchangeInfo"): 20, ("GET", "historicalTrades"): 25, ("GET", "trades"): 25}
EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)


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


class _UserConn:
    """One WS-API connection (the user data stream)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request):
        self.ws, self.request = ws, request
        self.subscriptions: set[int] = set()
        self.silent = False
        self.alive = True


class _Refused(Exception):
    """A request Binance refuses: its code, message and HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclasses.dataclass
class _Order:
    """A LIMIT GTC order of the account (money in Decimal)."""

    symbol: str
    order_id: int
    client_id: str
    side: str
    price: Decimal
    qty: Decimal
    base: str
    quote: str
    time_ms: int
    update_ms: int
    locked: Decimal  # what it still holds: quote for a BUY, base for a SELL
    executed: Decimal = ZERO
    quote_filled: Decimal = ZERO
    status: str = "NEW"
    hidden_until: float = 0.0  # monotonic: lose_reply(invisible_s)

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    def hidden(self) -> bool:
        return time.monotonic() < self.hidden_until

    def common(self) -> dict:
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1, "clientOrderId": self.client_id,
                "price": _fmt(self.price), "origQty": _fmt(self.qty), "executedQty": _fmt(self.executed),
                "cummulativeQuoteQty": _fmt(self.quote_filled), "status": self.status, "timeInForce": "GTC",
                "type": "LIMIT", "side": self.side}

    def rest(self) -> dict:
        """The order as GET /api/v3/order answers it."""
        return dict(self.common(), stopPrice=_fmt(ZERO), icebergQty=_fmt(ZERO), time=self.time_ms,
                    updateTime=self.update_ms, isWorking=True, workingTime=self.time_ms,
                    origQuoteOrderQty=_fmt(ZERO), selfTradePreventionMode="EXPIRE_MAKER")

    def placed(self) -> dict:
        """The answer of POST /api/v3/order (FULL: no fill at placement)."""
        return dict(self.common(), transactTime=self.time_ms, workingTime=self.time_ms, fills=[],
                    selfTradePreventionMode="EXPIRE_MAKER")


@dataclasses.dataclass(frozen=True)
class _Fill:
    """A trade of the account, as myTrades lists it."""

    symbol: str
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_buyer: bool

    def rest(self) -> dict:
        return {"symbol": self.symbol, "id": self.id, "orderId": self.order_id, "orderListId": -1,
                "price": _fmt(self.price), "qty": _fmt(self.qty), "quoteQty": _fmt(self.price * self.qty),
                "commission": _fmt(self.commission), "commissionAsset": self.commission_asset, "time": self.time_ms,
                "isBuyer": self.is_buyer, "isMaker": True, "isBestMatch": True}


class FakeBinance:
    """See the module docstring. All state lives in the server's thread; methods are thread-safe."""

    def __init__(self, trades: dict[str, list[FakeTrade]] | None = None, exchange_info: dict | None = None,
                 *, max_age_s: float | None = None, shutdown_grace_s: float = 0.3, api_key: str = "fake-key",
                 api_secret: str = "fake-secret", balances: dict[str, str] | None = None, fee: str = "0.001",
                 partial: bool = False):
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
        # the account
        self.api_key, self.api_secret = api_key, api_secret
        self.fee = Decimal(fee)
        self.partial = partial
        self.clock_offset_ms = 0
        self._balances = {asset: [Decimal(free), ZERO] for asset, free in (balances or {}).items()}
        self._orders: list[_Order] = []  # every order, in orderId order
        self._fills: list[_Fill] = []
        self._ids = {"order": 1_000_000, "trade": 2_000_000, "execution": 3_000_000, "subscription": -1}
        self._user_conns: list[_UserConn] = []
        self._weights: collections.Counter = collections.Counter()  # minute -> used weight
        self._placements: collections.deque = collections.deque()  # monotonic times of order placements
        self._placements_total = 0
        self._lost_replies: list[tuple[str, float]] = []
        self._rejects: list[tuple[int, str, int]] = []
        self._rate_limited = (0, 1)  # calls left, Retry-After
        self._banned_until = 0.0  # time.time()
        self.order_delay_s = 0.0
        self.order_posts = 0  # POST /api/v3/order received, booked or not
        self.subscribes_total = 0
        self.rest_log: list[tuple[str, str]] = []  # (method, path) of the signed calls

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

    @property
    def ws_api_url(self) -> str:
        """The WS-API (user data stream)."""
        return f"ws://127.0.0.1:{self.port}/ws-api/v3"

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_server(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/{name}", self._stream)
        app.router.add_get("/stream", self._stream)
        for name, handler in (("ping", self._ping), ("time", self._time), ("exchangeInfo", self._exchange_info),
                              ("historicalTrades", self._historical_trades), ("trades", self._recent_trades)):
            app.router.add_get(f"/api/v3/{name}", self._rest(name, handler))
        for method, name, handler in (("POST", "order", self._new_order), ("GET", "order", self._get_order),
                                      ("DELETE", "order", self._cancel_order), ("GET", "openOrders", self._open_orders),
                                      ("GET", "account", self._account), ("GET", "myTrades", self._my_trades)):
            app.router.add_route(method, f"/api/v3/{name}", self._rest(name, self._signed(handler)))
        app.router.add_get("/ws-api/v3", self._ws_api)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop_server(self) -> None:
        for conn in list(self._conns) + list(self._user_conns):
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
            await self._match(symbol, trade)
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
            minute = int(time.time() // 60)
            self._weights[minute] += self._weight(request, name)
            if self.rest_delay_s:
                await asyncio.sleep(self.rest_delay_s)
            if self._rest_failures:
                status = self._rest_failures.pop(0)
                response = web.json_response({"code": -1001, "msg": "Internal error; unable to process your "
                                              "request. Please try again."}, status=status)
            else:
                response = await handler(request)
            response.headers["X-MBX-USED-WEIGHT-1M"] = str(self._weights[minute])
            return response
        return serve

    @staticmethod
    def _weight(request: web.Request, name: str) -> int:
        if name == "openOrders" and "symbol" not in request.query:
            return 80
        return WEIGHTS.get((request.method, name), 1)

    async def _ping(self, request):
        return web.json_response({})

    async def _time(self, request):
        return web.json_response({"serverTime": self._now_ms()})

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
        return web.json_response(dict(info, serverTime=self._now_ms(),
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

    # -- the account: test hooks and views (thread-safe) ---------------------------------

    def fill(self, client_order_id: str, qty: str | None = None) -> dict:
        """Fill the open order `client_order_id` at its price without a market trade: all of it, or `qty`."""
        async def fill_it():
            order = self._open_order(client_order_id)
            amount = order.remaining if qty is None else min(Decimal(qty), order.remaining)
            return (await self._fill(order, amount)).rest()
        return self._call(fill_it())

    def cancel_by_hand(self, client_order_id: str) -> dict:
        """Cancel the open order `client_order_id` as a person on the web UI does (cancel id `web_...`)."""
        async def cancel_it():
            order = self._open_order(client_order_id)
            return await self._cancel(order, "web_" + secrets.token_hex(8))
        return self._call(cancel_it())

    def orders(self) -> list[dict]:
        """Every order ever booked, in orderId order, as GET /api/v3/order answers it."""
        return self._call(_as_coro(lambda: [o.rest() for o in self._orders]))

    def open_orders(self, symbol: str | None = None) -> list[dict]:
        return self._call(_as_coro(lambda: [o.rest() for o in self._orders
                                            if o.open and symbol in (None, o.symbol)]))

    def order(self, client_order_id: str) -> dict | None:
        """The latest order with this client order id (None if none)."""
        def find():
            found = [o for o in self._orders if o.client_id == client_order_id]
            return found[-1].rest() if found else None
        return self._call(_as_coro(find))

    def my_trades(self, symbol: str) -> list[dict]:
        """The account's trades of `symbol`, as myTrades lists them."""
        return self._call(_as_coro(lambda: [f.rest() for f in self._fills if f.symbol == symbol]))

    def account_balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """asset -> (free, locked)."""
        return self._call(_as_coro(lambda: {a: (b[0], b[1]) for a, b in self._balances.items()}))

    def subscriptions(self) -> int:
        """Live user-stream subscriptions (on open connections that are not silenced)."""
        return self._call(_as_coro(lambda: sum(len(c.subscriptions) for c in self._user_conns
                                               if c.alive and not c.silent)))

    def _open_order(self, client_order_id: str) -> _Order:
        for order in self._orders:
            if order.client_id == client_order_id and order.open:
                return order
        raise KeyError(f"no open order {client_order_id!r}")

    # -- account faults ----------------------------------------------------------------

    def drop_user_streams(self) -> int:
        """Abort every WS-API connection (no close frame), as a network cut does. Returns how many."""
        def drop_all():
            conns = [c for c in self._user_conns if c.alive]
            for conn in conns:
                _abort(conn)
            return len(conns)
        return self._call(_as_coro(drop_all))

    def silence_user_streams(self) -> int:
        """The open WS-API connections stay open but get nothing: no events, no answers, no pongs."""
        def silence_all():
            conns = [c for c in self._user_conns if c.alive]
            for conn in conns:
                conn.silent = True
            return len(conns)
        return self._call(_as_coro(silence_all))

    def lose_reply(self, n: int = 1, mode: str = "503", invisible_s: float = 0.0) -> None:
        """Book the next `n` accepted order placements but lose the answer: a 503 -1007 (`mode="503"`), or the
        connection closed with no answer (`"close"`); for `invisible_s` the order then looks unknown."""
        assert mode in ("503", "close"), mode
        self._call(_as_coro(lambda: self._lost_replies.extend([(mode, invisible_s)] * n)))

    def reject_next(self, code: int, msg: str, n: int = 1, status: int = 400) -> None:
        """Answer the next `n` order placements (signed correctly) with this error, booking nothing."""
        self._call(_as_coro(lambda: self._rejects.extend([(code, msg, status)] * n)))

    def rate_limit(self, n: int, retry_after: int = 1) -> None:
        """Answer the next `n` signed calls 429 -1003 with `Retry-After`."""
        def limit():
            self._rate_limited = (n, retry_after)
        self._call(_as_coro(limit))

    def ban(self, seconds: float) -> None:
        """Answer every signed call 418 -1003 (IP banned) for `seconds`."""
        def ban_ip():
            self._banned_until = time.time() + seconds
        self._call(_as_coro(ban_ip))

    def skew_clock(self, ms: int) -> None:
        """Set the fake's clock `ms` ahead of this machine's (behind if negative)."""
        def skew():
            self.clock_offset_ms = ms
        self._call(_as_coro(skew))

    def slow_orders(self, seconds: float) -> None:
        """Answer order placements `seconds` late (they are booked at once)."""
        def slow():
            self.order_delay_s = seconds
        self._call(_as_coro(slow))

    # -- signed REST -------------------------------------------------------------------

    def _signed(self, handler):
        async def serve(request: web.Request):
            self.rest_log.append((request.method, request.path))
            if request.method == "POST" and request.path == "/api/v3/order":
                self.order_posts += 1
            query = request.rel_url.raw_query_string
            body = await request.text() if request.can_read_body else ""
            params = dict(parse_qsl(query, keep_blank_values=True)) | dict(parse_qsl(body, keep_blank_values=True))
            try:
                self._limits()
                self._check_signed(params, request.headers.get("X-MBX-APIKEY"), _unsigned(query) + _unsigned(body))
                return await handler(request, params)
            except _Refused as refused:
                return self._refusal(refused)
        return serve

    def _refusal(self, refused: _Refused) -> web.Response:
        response = _error(refused.code, refused.msg, refused.status)
        if refused.status in (418, 429):
            response.headers["Retry-After"] = str(self._retry_after(refused.status))
        return response

    def _limits(self) -> None:
        if time.time() < self._banned_until:
            raise _Refused(-1003, BANNED.format(int(self._banned_until * 1000)), 418)
        left, retry_after = self._rate_limited
        if left > 0:
            self._rate_limited = (left - 1, retry_after)
            raise _Refused(-1003, TOO_MANY, 429)

    def _retry_after(self, status: int) -> int:
        if status == 418 and time.time() < self._banned_until:
            return max(1, int(self._banned_until - time.time() + 0.999))
        return self._rate_limited[1]

    def _check_signed(self, params: dict, api_key: str | None, payload: str) -> None:
        """Binance's checks of a signed request: the key, the signature over `payload`, the timestamp."""
        if api_key != self.api_key:
            raise _Refused(*BAD_KEY)
        for name in ("timestamp", "signature"):
            if not params.get(name):
                raise _Refused(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(params["signature"]).lower()):
            raise _Refused(*BAD_SIGNATURE)
        try:
            timestamp, window = int(params["timestamp"]), int(params.get("recvWindow", 5000))
        except ValueError:
            raise _Refused(-1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.")
        if window > 60000:
            raise _Refused(-1131, "recvWindow must be less than 60000")
        now = self._now_ms()
        if not (timestamp < now + 1000 and now - timestamp <= window):
            raise _Refused(*BAD_TIMESTAMP)

    async def _new_order(self, request: web.Request, params: dict):
        now = time.monotonic()
        self._placements.append(now)
        self._placements_total += 1
        while self._placements and self._placements[0] < now - 10:
            self._placements.popleft()
        counts = {"X-MBX-ORDER-COUNT-10S": str(len(self._placements)),
                  "X-MBX-ORDER-COUNT-1D": str(self._placements_total)}
        try:
            if self._rejects:
                raise _Refused(*self._rejects.pop(0))
            order = self._book(params)
        except _Refused as refused:
            response = self._refusal(refused)
            response.headers.update(counts)
            return response
        lost = self._lost_replies.pop(0) if self._lost_replies else None
        if lost is not None:
            order.hidden_until = time.monotonic() + lost[1]
        await self._push(self._report(order, "NEW"))
        await self._push_position({order.quote if order.side == "BUY" else order.base})
        if self.order_delay_s:
            await asyncio.sleep(self.order_delay_s)
        if lost is not None and lost[0] == "close":
            request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if lost is not None:
            response = _error(-1007, LOST, 503)
        elif params.get("newOrderRespType") == "ACK":
            response = web.json_response({"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
                                          "clientOrderId": order.client_id, "transactTime": order.time_ms})
        else:
            placed = order.placed()
            if params.get("newOrderRespType") == "RESULT":
                del placed["fills"]
            response = web.json_response(placed)
        response.headers.update(counts)
        return response

    def _book(self, params: dict) -> _Order:
        """Validate an order placement as Binance does and book it (locks its balance)."""
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise _Refused(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        symbol, side, kind = params["symbol"], params["side"], params["type"]
        if not self._known(symbol):
            raise _Refused(**INVALID_SYMBOL)
        if side not in ("BUY", "SELL"):
            raise _Refused(-1117, "Invalid side.")
        if kind != "LIMIT":
            raise _Refused(-1116, f"Invalid orderType: the fake takes LIMIT only, not {kind}.")
        for name in ("timeInForce", "quantity", "price"):
            if not params.get(name):
                raise _Refused(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if params["timeInForce"] != "GTC":
            raise _Refused(-1115, f"Invalid timeInForce: the fake takes GTC only, not {params['timeInForce']}.")
        extra = sorted(set(params) - ORDER_PARAMS)
        if extra:
            raise _Refused(-1104, f"Not all sent parameters were read; read '{len(params) - len(extra)}' "
                           f"parameter(s) but was sent '{len(params)}' (the fake does not read {', '.join(extra)}).")
        price, qty = _decimal(params, "price"), _decimal(params, "quantity")
        failure = self._filter_failure(symbol, price, qty)
        if failure:
            raise _Refused(-1013, f"Filter failure: {failure}")
        if price <= 0 or qty <= 0:
            raise _Refused(-1013, "Invalid price." if price <= 0 else "Invalid quantity.")
        client_id = params.get("newClientOrderId") or _client_id()
        if any(o.client_id == client_id and o.open for o in self._orders):
            raise _Refused(-2010, "Duplicate order sent.")
        base, quote = self._assets(symbol)
        asset, need = (quote, price * qty) if side == "BUY" else (base, qty)
        balance = self._balance(asset)
        if balance[0] < need:
            raise _Refused(-2010, "Account has insufficient balance for requested action.")
        balance[0] -= need
        balance[1] += need
        now = self._now_ms()
        order = _Order(symbol, self._next("order"), client_id, side, price, qty, base, quote, now, now, need)
        self._orders.append(order)
        return order

    def _symbol_info(self, symbol: str) -> dict | None:
        for info in (self.exchange_info or {}).get("symbols", []):
            if info.get("symbol") == symbol:
                return info
        return None

    def _known(self, symbol: str) -> bool:
        return self._symbol_info(symbol) is not None or symbol in self._printed

    def _assets(self, symbol: str) -> tuple[str, str]:
        info = self._symbol_info(symbol)
        if info and info.get("baseAsset") and info.get("quoteAsset"):
            return info["baseAsset"], info["quoteAsset"]
        for quote in QUOTE_SUFFIXES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return symbol[:-len(quote)], quote
        raise _Refused(**INVALID_SYMBOL)

    def _filter_failure(self, symbol: str, price: Decimal, qty: Decimal) -> str | None:
        """The first exchangeInfo filter of `symbol` the order breaks (PRICE_FILTER, LOT_SIZE, NOTIONAL...)."""
        for rule in (self._symbol_info(symbol) or {}).get("filters", []):
            kind = rule.get("filterType")
            if kind == "PRICE_FILTER":
                low, high, tick = (Decimal(rule.get(k, "0")) for k in ("minPrice", "maxPrice", "tickSize"))
                if (low and price < low) or (high and price > high) or (tick and (price - low) % tick):
                    return kind
            elif kind == "LOT_SIZE":
                low, high, step = (Decimal(rule.get(k, "0")) for k in ("minQty", "maxQty", "stepSize"))
                if qty < low or (high and qty > high) or (step and (qty - low) % step):
                    return kind
            elif kind in ("NOTIONAL", "MIN_NOTIONAL"):
                if price * qty < Decimal(rule.get("minNotional", "0")):
                    return kind
                if kind == "NOTIONAL" and rule.get("maxNotional") and price * qty > Decimal(rule["maxNotional"]):
                    return kind
        return None

    def _find(self, params: dict) -> _Order | None:
        """The order `symbol` + `orderId` or `origClientOrderId` names (None if unknown or invisible yet)."""
        symbol = params.get("symbol")
        if not symbol:
            raise _Refused(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not self._known(symbol):
            raise _Refused(**INVALID_SYMBOL)
        if params.get("orderId"):
            found = [o for o in self._orders if str(o.order_id) == params["orderId"]]
        elif params.get("origClientOrderId"):
            found = [o for o in self._orders if o.client_id == params["origClientOrderId"]]
        else:
            raise _Refused(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        found = [o for o in found if o.symbol == symbol]
        return found[-1] if found and not found[-1].hidden() else None

    async def _get_order(self, request: web.Request, params: dict):
        order = self._find(params)
        if order is None:
            raise _Refused(-2013, "Order does not exist.")
        return web.json_response(order.rest())

    async def _cancel_order(self, request: web.Request, params: dict):
        order = self._find(params)
        if order is None or not order.open:
            raise _Refused(-2011, "Unknown order sent.")
        return web.json_response(await self._cancel(order, params.get("newClientOrderId") or _client_id()))

    async def _open_orders(self, request: web.Request, params: dict):
        symbol = params.get("symbol")
        if symbol is not None and not self._known(symbol):
            raise _Refused(**INVALID_SYMBOL)
        return web.json_response([o.rest() for o in self._orders
                                  if o.open and not o.hidden() and symbol in (None, o.symbol)])

    async def _account(self, request: web.Request, params: dict):
        bps = int(self.fee * 10000)
        return web.json_response({
            "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": _fmt(self.fee), "taker": _fmt(self.fee), "buyer": _fmt(ZERO),
                                "seller": _fmt(ZERO)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self._now_ms(),
            "accountType": "SPOT", "balances": [{"asset": a, "free": _fmt(b[0]), "locked": _fmt(b[1])}
                                                for a, b in self._balances.items()],
            "permissions": ["SPOT"], "uid": 354937868})

    async def _my_trades(self, request: web.Request, params: dict):
        symbol = params.get("symbol")
        if not symbol:
            raise _Refused(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not self._known(symbol):
            raise _Refused(**INVALID_SYMBOL)
        try:
            limit = int(params.get("limit", 500))
            fills = [f for f in self._fills if f.symbol == symbol]
            if params.get("orderId"):
                fills = [f for f in fills if f.order_id == int(params["orderId"])]
            if params.get("fromId"):
                fills = [f for f in fills if f.id >= int(params["fromId"])][:limit]
        except ValueError:
            raise _Refused(-1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            raise _Refused(-1130, "Data sent for parameter 'limit' is not valid.")
        return web.json_response([f.rest() for f in fills[-limit:]])

    # -- matching and book-keeping -----------------------------------------------------

    def _now_ms(self) -> int:
        """The fake's clock."""
        return int(time.time() * 1000 + self.clock_offset_ms)

    def _next(self, counter: str) -> int:
        self._ids[counter] += 1
        return self._ids[counter]

    def _balance(self, asset: str) -> list[Decimal]:
        return self._balances.setdefault(asset, [ZERO, ZERO])

    async def _match(self, symbol: str, trade: FakeTrade) -> None:
        """Fill the open orders of `symbol` the printed `trade` crosses, oldest first, at their price."""
        price, left = Decimal(trade.price), Decimal(trade.qty)
        for order in [o for o in self._orders if o.symbol == symbol and o.open]:
            if not (price <= order.price if order.side == "BUY" else price >= order.price):
                continue
            qty = min(order.remaining, left) if self.partial else order.remaining
            if qty <= 0:
                break
            left -= qty
            await self._fill(order, qty)

    async def _fill(self, order: _Order, qty: Decimal) -> _Fill:
        quote_qty = order.price * qty
        base, quote = self._balance(order.base), self._balance(order.quote)
        if order.side == "BUY":
            commission, asset = _round8(self.fee * qty), order.base
            quote[1] -= quote_qty
            order.locked -= quote_qty
            base[0] += qty - commission
        else:
            commission, asset = _round8(self.fee * quote_qty), order.quote
            base[1] -= qty
            order.locked -= qty
            quote[0] += quote_qty - commission
        order.executed += qty
        order.quote_filled += quote_qty
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_ms = self._now_ms()
        fill = _Fill(order.symbol, self._next("trade"), order.order_id, order.price, qty, commission, asset,
                     order.update_ms, order.side == "BUY")
        self._fills.append(fill)
        await self._push(self._report(order, "TRADE", fill))
        await self._push_position({order.base, order.quote})
        return fill

    async def _cancel(self, order: _Order, cancel_id: str) -> dict:
        """Cancel an open order (unlock what it holds); the answer of DELETE /api/v3/order."""
        asset = order.quote if order.side == "BUY" else order.base
        balance = self._balance(asset)
        balance[0] += order.locked
        balance[1] -= order.locked
        order.locked = ZERO
        order.status = "CANCELED"
        order.update_ms = self._now_ms()
        await self._push(self._report(order, "CANCELED", cancel_id=cancel_id))
        await self._push_position({asset})
        common = order.common()
        return dict(common, origClientOrderId=order.client_id, clientOrderId=cancel_id,
                    transactTime=order.update_ms, selfTradePreventionMode="EXPIRE_MAKER")

    def _report(self, order: _Order, execution: str, fill: _Fill | None = None, cancel_id: str | None = None) -> dict:
        """The executionReport of a change of `order`."""
        last_qty = fill.qty if fill else ZERO
        last_price = fill.price if fill else ZERO
        return {"e": "executionReport", "E": self._now_ms(), "s": order.symbol, "c": cancel_id or order.client_id,
                "S": order.side, "o": "LIMIT", "f": "GTC", "q": _fmt(order.qty), "p": _fmt(order.price),
                "P": _fmt(ZERO), "F": _fmt(ZERO), "g": -1, "C": order.client_id if cancel_id else "",
                "x": execution, "X": order.status, "r": "NONE", "i": order.order_id, "l": _fmt(last_qty),
                "z": _fmt(order.executed), "L": _fmt(last_price), "n": _fmt(fill.commission) if fill else "0",
                "N": fill.commission_asset if fill else None, "T": order.update_ms,
                "t": fill.id if fill else -1, "I": self._next("execution"), "w": order.open,
                "m": fill is not None, "M": False, "O": order.time_ms, "Z": _fmt(order.quote_filled),
                "Y": _fmt(last_qty * last_price), "Q": _fmt(ZERO), "W": order.time_ms, "V": "EXPIRE_MAKER"}

    # -- the user data stream (WS-API) -------------------------------------------------

    async def _ws_api(self, request: web.Request):
        ws = web.WebSocketResponse(autoping=False)  # pings are answered below, unless silenced
        await ws.prepare(request)
        conn = _UserConn(ws, request)
        self._user_conns.append(conn)
        try:
            async for message in ws:
                if conn.silent:
                    continue
                if message.type == WSMsgType.PING:
                    await ws.pong(message.data)
                elif message.type == WSMsgType.TEXT:
                    await self._ws_answer(conn, message.data)
        finally:
            conn.alive = False
            self._user_conns.remove(conn)
        return ws

    async def _ws_answer(self, conn: _UserConn, text: str) -> None:
        request_id = None
        try:
            request = json.loads(text)
            request_id, method, params = request.get("id"), request["method"], request.get("params") or {}
            reply = {"id": request_id, "status": 200, "result": self._ws_call(conn, method, params), "rateLimits": []}
        except _Refused as refused:
            reply = {"id": request_id, "status": refused.status, "error": {"code": refused.code, "msg": refused.msg},
                     "rateLimits": []}
        except (ValueError, KeyError, TypeError, AttributeError):
            reply = {"id": request_id, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}
        await _send_json(conn, reply)

    def _ws_call(self, conn: _UserConn, method: str, params: dict) -> dict:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self._now_ms()}
        if method == "userDataStream.subscribe.signature":
            payload = urlencode(sorted((k, str(v)) for k, v in params.items() if k != "signature"))
            self._check_signed(params, params.get("apiKey"), payload)
            subscription = self._next("subscription")
            conn.subscriptions.add(subscription)
            self.subscribes_total += 1
            return {"subscriptionId": subscription}
        if method == "userDataStream.unsubscribe":
            if "subscriptionId" in params:
                conn.subscriptions.discard(int(params["subscriptionId"]))
            else:
                conn.subscriptions.clear()
            return {}
        raise _Refused(-1102, f"Unknown method '{method}'.")

    async def _push(self, event: dict) -> None:
        """Send an account event to every live subscription."""
        for conn in list(self._user_conns):
            if conn.alive and not conn.silent:
                for subscription in sorted(conn.subscriptions):
                    await _send_json(conn, {"subscriptionId": subscription, "event": event})

    async def _push_position(self, assets: set[str]) -> None:
        now = self._now_ms()
        await self._push({"e": "outboundAccountPosition", "E": now, "u": now, "B": [
            {"a": a, "f": _fmt(self._balance(a)[0]), "l": _fmt(self._balance(a)[1])} for a in sorted(assets)]})


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _fmt(value: Decimal) -> str:
    """A decimal as Binance writes it: 8 decimals."""
    return f"{value:.8f}"


def _round8(value: Decimal) -> Decimal:
    return value.quantize(EIGHT, rounding=ROUND_HALF_UP)


def _decimal(params: dict, name: str) -> Decimal:
    try:
        value = Decimal(params[name])
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise _Refused(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                       "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return value


def _client_id() -> str:
    """A client order id as Binance makes them up (22 letters and digits)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))


def _unsigned(raw: str) -> str:
    """A raw query string or body without its `signature` parameter: what was signed."""
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


async def _send_json(conn: _UserConn, message: dict) -> None:
    try:
        await conn.ws.send_str(json.dumps(message, separators=(",", ":")))
    except Exception:  # the peer went away: its handler cleans up
        conn.alive = False


def _abort(conn: _Conn | _UserConn) -> None:
    conn.alive = False
    if conn.request.transport is not None:
        conn.request.transport.abort()


async def _as_coro(function):
    return function()
