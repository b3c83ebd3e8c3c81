"""The exchange gateway process: the only one that talks to the exchange.

Paper trading for now: the pure paper exchange runs on the trade stream.
Requests (place / query / cancel) come in on a ROUTER and are answered;
fills go out on the updates PUB to the owning trader's topic. Placing is
idempotent by client order id: a repeated place answers with the order as
it stands, never places a second one. At exit it writes the orders and the
summary to the run directory.

In lockstep, after each trade it publishes `Crossed` (the trade and its
fills) for the symbol's leader, which then conducts its traders.
"""

import json
from decimal import Decimal
import logging
import os
import time
from pathlib import Path

import zmq

from naive_mp import wire
from naive_mp.backtest.report import combine, orders_csv, summarize, summary_dict
from naive_mp.core.money import fmt
from naive_mp.core.messages import OrderCanceled, OrderFilled
from naive_mp.exchange import Exchange
from naive_mp.exchange.errors import ExchangeRefused
from naive_mp.exchange.paper import Fill, Order, PaperExchange
from naive_mp.files import write_atomically
from naive_mp.core.settings import Settings
from naive_mp.runtime import sockets
from naive_mp.runtime.control import ControlLink
from naive_mp.runtime.signals import SignalQueue
from naive_mp.runtime.streams import publisher, subscriber, welcome
from naive_mp.runtime.metrics import LatencyHistogram
from naive_mp.report.symbols import split_symbol
from naive_mp.store import FeedRecord, Store

log = logging.getLogger("naive_mp.gateway")

HEARTBEAT_S = 1.0
MAX_LATENCIES = 1_000_000
FEED_SAVE_S = 0.2


def order_info(order: Order) -> wire.OrderInfo:
    return wire.OrderInfo(order_id=order.order_id, client_order_id=order.client_order_id, side=order.side,
                          price=order.price, quantity=order.quantity, status=order.status,
                          filled_trade_id=order.filled_trade_id)


class SymbolFeed:
    """What the gateway applied of one symbol's trade stream (stored as a FeedRecord)."""

    def __init__(self, record: FeedRecord | None = None):
        record = record or FeedRecord()
        self.next_seq = record.last_seq + 1 if record.last_seq else 0
        self.lost = record.lost
        self.last_trade_id = record.last_trade_id
        self.last_price = record.last_price

    def record(self) -> FeedRecord:
        return FeedRecord(last_seq=max(self.next_seq - 1, 0), last_trade_id=self.last_trade_id,
                          last_price=self.last_price, lost=self.lost)

    @property
    def events(self) -> int:
        return self.record().events


class Gateway:
    def __init__(self, spec: wire.RunSpec):
        self.spec = spec
        fee = spec.settings[spec.symbols[0]].fee if spec.symbols else Settings().fee
        self.exchange: Exchange = PaperExchange(spec.filters, fee)
        self.feeds = {symbol: SymbolFeed() for symbol in spec.filters}
        self.latencies_ns: list[int] = []
        self.latency = LatencyHistogram()
        self.refused: dict[tuple[str, int], int] = {}  # (symbol, code) -> orders refused since start
        self.fills_published: dict[str, int] = {}
        self.pnl: dict[str, Decimal] = {}  # realized, per symbol, as of the last beat
        self.started_at = time.time()
        self.feeds_saved_at = 0.0
        self.feeds_dirty = False

    def _restore(self) -> None:
        """Take the book back from the store: a restarted gateway goes on as if it had never died."""
        self.store = Store(self.spec.run_dir)
        book = self.store.book()
        self.exchange.restore(book.orders, book.fills, book.balances)
        for symbol, record in book.feeds.items():
            self.feeds[symbol] = SymbolFeed(record)
        if book.orders:
            open_orders = sum(o.status == "NEW" for o in book.orders)
            log.info("book restored: %d orders (%d open), %d fills", len(book.orders), open_orders, len(book.fills))

    def _commit(self, symbol: str, orders: list[Order], fills: list[Fill] = ()) -> None:
        """Durably record what changed in `symbol`'s book, with the feed position it goes with."""
        wallet = self.exchange.balances.get(symbol)
        self.store.save_book(orders, fills, {symbol: wallet} if wallet else {},
                             {symbol: self.feeds[symbol].record()})

    def _save_feeds(self, force: bool = False) -> None:
        """Feed positions alone change nothing in the book: saved now and then, for the counts."""
        if self.feeds_dirty and (force or time.monotonic() - self.feeds_saved_at > FEED_SAVE_S):
            self.store.save_book([], [], {}, {s: f.record() for s, f in self.feeds.items()})
            self.feeds_saved_at, self.feeds_dirty = time.monotonic(), False

    def run(self) -> int:
        self.signals = SignalQueue()
        self._restore()
        self.ctx = zmq.Context()
        run_dir = self.spec.run_dir
        self.router = sockets.make(self.ctx, zmq.ROUTER)
        self.router.bind(wire.address(run_dir, "gateway"))
        self.updates = publisher(self.ctx, wire.address(run_dir, "updates"))
        self.acks = sockets.make(self.ctx, zmq.PUSH)
        self.acks.connect(wire.address(run_dir, "acks"))
        self.control = ControlLink(run_dir, context=self.ctx)
        self.trades = subscriber(self.ctx, wire.address(run_dir, "trades"),
                                 [wire.trade_topic(s) for s in self.spec.symbols] or [b""])
        try:
            self._loop()
        finally:
            self._save_feeds(force=True)
            self._write_results()
            self.ctx.destroy(linger=0)  # stopped last: every peer is gone, nothing waits for us
        return 0

    def _loop(self) -> None:
        poller = zmq.Poller()
        for sock in (self.router, self.trades, self.updates):
            poller.register(sock, zmq.POLLIN)
        poller.register(self.signals.fd, zmq.POLLIN)
        for fd in self._extra_fds():
            poller.register(fd, zmq.POLLIN)
        decode_stream = wire.Decoder("trades", wire.StreamMessage)
        decode_request = wire.Decoder("gateway", wire.GatewayRequest)
        next_beat = 0.0
        while not self.signals.take():
            self._save_feeds()
            self._tick()
            if time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + HEARTBEAT_S
            for sock, _ in poller.poll(HEARTBEAT_S * 1000):
                if sock is self.router:
                    self._on_request(decode_request)
                elif sock is self.trades:
                    self._on_stream(decode_stream.or_drop(wire.split_topic(self.trades.recv())[1]))
                elif sock is self.updates:
                    welcome(self.updates)
                else:
                    self._on_fd(sock)
        self._drain_requests(decode_request)

    # Hooks for the live gateway (runtime/gateway_live.py): more to watch, more to do each turn.
    def _extra_fds(self) -> list[int]:
        return []

    def _on_fd(self, fd: int) -> None:
        pass

    def _tick(self) -> None:
        pass

    def _describe(self, events: int) -> str:
        return f"paper, {events:,} trades"

    def _drain_requests(self, decode_request) -> None:
        """Answer what traders sent before the stop, so no place is lost in a queue."""
        while self.router.poll(100):
            self._on_request(decode_request)

    # -- the trade stream -----------------------------------------------------------

    def _on_stream(self, message) -> None:
        if isinstance(message, wire.TradeBatch):
            self._on_batch(message)
        elif isinstance(message, wire.Welcome):  # (re)connected to a streamer: tell it we listen
            self.acks.send(wire.encode(wire.Ready(role="gateway")))
        elif isinstance(message, wire.StreamEnded):
            self.acks.send(wire.encode(wire.Handled(role="gateway", symbol=message.symbol, seq=message.last_seq)))

    def _on_batch(self, batch: wire.TradeBatch) -> None:
        """Apply each trade once: a trade already applied (a restarted streamer resends) is skipped."""
        feed = self.feeds.setdefault(batch.symbol, SymbolFeed())
        if feed.next_seq and batch.seq > feed.next_seq and not self.spec.lockstep:
            feed.lost += batch.seq - feed.next_seq
            log.warning("lost %d %s trades before seq %d", batch.seq - feed.next_seq, batch.symbol, batch.seq)
        first = max(0, feed.next_seq - batch.seq) if feed.next_seq else 0
        if self.spec.lockstep:  # handled before: say so again, with the fills it caused then
            for offset, trade in enumerate(batch.trades[:first]):
                self._crossed(batch.symbol, batch.seq + offset, trade, self._fills_of(batch.symbol, trade.trade_id))
        for offset, trade in enumerate(batch.trades[first:], start=first):
            self._apply(batch, batch.seq + offset, trade)

    def _apply(self, batch: wire.TradeBatch, seq: int, trade: wire.Trade) -> None:
        feed = self.feeds[batch.symbol]
        fills = self.exchange.on_trade(batch.symbol, trade.trade_id, trade.price)
        feed.next_seq, feed.last_trade_id, feed.last_price = seq + 1, trade.trade_id, trade.price
        self.feeds_dirty = True
        if fills:  # committed before anyone hears of them
            self._commit(batch.symbol, [self.exchange.orders[f.order_id] for f in fills],
                         self.exchange.fills[-len(fills):])
        # Without fills the book did not change: re-applying this trade after a crash is a no-op
        # (an order placed since was committed with this position), so the position waits.
        for fill in fills:
            self._publish_fill(batch.symbol, fill, batch.sent_ns)
        if self.spec.lockstep:
            self._crossed(batch.symbol, seq, trade, fills)

    def _fills_of(self, symbol: str, trade_id: int) -> list[OrderFilled]:
        """The fills trade `trade_id` caused, as they were published then."""
        fills = []
        for fill in self.exchange.fills:
            order = self.exchange.orders[fill.order_id]
            if fill.trade_id == trade_id and order.symbol == symbol:
                fills.append(OrderFilled(client_order_id=order.client_order_id, order_id=order.order_id,
                                         side=order.side, price=fill.price, quantity=fill.quantity,
                                         trade_id=trade_id))
        return fills

    def _crossed(self, symbol: str, seq: int, trade: wire.Trade, fills: list[OrderFilled]) -> None:
        """Lockstep: the symbol's leader conducts its traders from here."""
        crossed = wire.Crossed(symbol=symbol, seq=seq, trade=trade, fills=fills)
        self.updates.send(wire.lockstep_topic(symbol) + wire.encode(crossed))
        self.acks.send(wire.encode(wire.Handled(role="gateway", symbol=symbol, seq=seq)))

    def _publish_fill(self, symbol: str, fill: OrderFilled, cause_ns: int) -> None:
        self.fills_published[symbol] = self.fills_published.get(symbol, 0) + 1
        trader_id = self.exchange.orders[fill.order_id].trader_id
        log.info("%s#%d: %s %s filled @ %s", symbol, trader_id, fill.side, fill.client_order_id, f"{fill.price:f}")
        self.updates.send(wire.update_topic(symbol, trader_id) + wire.encode(wire.Filled(fill=fill, cause_ns=cause_ns)))

    # -- requests -----------------------------------------------------------------

    def _on_request(self, decode_request) -> None:
        frames = self.router.recv_multipart()
        request = decode_request.or_drop(frames[-1]) if len(frames) == 2 else None
        if request is None:
            return
        identity = frames[0]
        reply = self._answer(request)
        self.router.send_multipart([identity, wire.encode(reply)])

    def _answer(self, request) -> wire.GatewayReply:
        if isinstance(request, wire.Place):
            return self._place(request)
        order = self.exchange.find(request.client_order_id)
        if isinstance(request, wire.Query):
            if order is None:
                return wire.GatewayReply(req_id=request.req_id, code=-2013, reason="Order does not exist.")
            return wire.GatewayReply(req_id=request.req_id, order=order_info(order))
        try:
            canceled = self.exchange.cancel(request.client_order_id)
        except ExchangeRefused as refused:
            return wire.GatewayReply(req_id=request.req_id, code=refused.code, reason=refused.message)
        self._commit(canceled.symbol, [canceled])
        log.warning("%s#%d: %s %s canceled on request", canceled.symbol, canceled.trader_id, canceled.side,
                    canceled.client_order_id)
        event = OrderCanceled(client_order_id=canceled.client_order_id, side=canceled.side)
        self.updates.send(wire.update_topic(canceled.symbol, canceled.trader_id) + wire.encode(wire.Canceled(event=event)))
        return wire.GatewayReply(req_id=request.req_id, order=order_info(canceled))

    def _place(self, request: wire.Place) -> wire.GatewayReply:
        received_ns = time.monotonic_ns()
        existing = self.exchange.find(request.order.client_order_id)
        if existing is not None:  # a retry, or a restarted trader: answer, never place twice
            log.warning("place of %s, which exists (%s): answered with the order as it stands",
                        existing.client_order_id, existing.status)
            return wire.GatewayReply(req_id=request.req_id, order=order_info(existing))
        if request.cause_ns:
            self.latency.observe((received_ns - request.cause_ns) / 1e9)
            if len(self.latencies_ns) < MAX_LATENCIES:
                self.latencies_ns.append(received_ns - request.cause_ns)
        feed = self.feeds.setdefault(request.order.symbol, SymbolFeed())
        try:
            order = self.exchange.place(request.order, feed.last_trade_id)
        except ExchangeRefused as refused:
            log.warning("refused %s: %s %s", request.order.client_order_id, refused.code, refused.message)
            key = (request.order.symbol, refused.code)
            self.refused[key] = self.refused.get(key, 0) + 1
            return wire.GatewayReply(req_id=request.req_id, code=refused.code, reason=refused.message)
        self._commit(order.symbol, [order])  # acknowledged only once it is durable
        return wire.GatewayReply(req_id=request.req_id, order=order_info(order))

    # -- status and results ---------------------------------------------------------

    def _beat(self) -> None:
        events = sum(f.events for f in self.feeds.values())
        samples = self._samples()
        pnl = ", ".join(f"{s.labels['symbol']} {fmt(self.pnl[s.labels['symbol']])} {s.labels['quote']}"
                        for s in samples if s.name == "naive_mp_realized_pnl")
        info = wire.ProcessInfo(role="gateway", pid=os.getpid(), state=self._describe(events) + (f", {pnl}" if pnl else ""),
                                orders=len(self.exchange.orders), started_at=self.started_at)
        self.control.beat(info, samples=samples)

    def _samples(self) -> list[wire.Sample]:
        """This gateway's metrics now (runtime/metrics.py describes them)."""
        out = self.latency.samples("naive_mp_tick_to_order_seconds")
        by_symbol: dict[str, list[Order]] = {}
        for order in self.exchange.orders.values():
            by_symbol.setdefault(order.symbol, []).append(order)
        for symbol, feed in self.feeds.items():
            orders = by_symbol.get(symbol, [])
            pnl = self.pnl[symbol] = summarize(symbol, orders, self.exchange.fee, 0, 0, None).realized_pnl
            label = {"symbol": symbol}
            out += [wire.Sample(name="naive_mp_trades_received", value=feed.events, labels=label),
                    wire.Sample(name="naive_mp_trades_lost", value=feed.lost, labels=label),
                    wire.Sample(name="naive_mp_orders_placed", value=len(orders), labels=label),
                    wire.Sample(name="naive_mp_orders_filled", value=sum(o.status == "FILLED" for o in orders),
                                labels=label),
                    wire.Sample(name="naive_mp_fills", value=self.fills_published.get(symbol, 0), labels=label),
                    wire.Sample(name="naive_mp_realized_pnl", value=float(pnl),
                                labels={**label, "quote": split_symbol(symbol)[1]})]
        out += [wire.Sample(name="naive_mp_orders_refused", value=n, labels={"symbol": s, "code": str(code)})
                for (s, code), n in self.refused.items()]
        return out

    def _write_results(self) -> None:
        """orders.csv and summary.json (as backtest's), gateway-stats.json (latencies, losses)."""
        run_dir = Path(self.spec.run_dir)
        orders = sorted(self.exchange.orders.values(), key=lambda o: o.order_id)
        write_atomically(run_dir / "orders.csv", orders_csv(orders))
        leaders = self.store.leaders()
        summaries = [
            summarize(symbol, [o for o in orders if o.symbol == symbol], self.exchange.fee,
                      feed.events, leaders[symbol].max_traders if symbol in leaders else 0, feed.last_price)
            for symbol, feed in self.feeds.items() if feed.events or any(o.symbol == symbol for o in orders)
        ]
        summary = summary_dict(combine(summaries))
        if len(summaries) > 1:
            summary["per_symbol"] = [summary_dict(s) for s in summaries]
        # trades lost on the way to the gateway, and to the traders (their leaders count those)
        summary["lost_events"] = sum(f.lost for f in self.feeds.values()) + sum(r.lost for r in leaders.values())
        write_atomically(run_dir / "summary.json", json.dumps(summary))
        stats = {"latency_ns": self.latencies_ns, "lost": {s: f.lost for s, f in self.feeds.items()}}
        write_atomically(run_dir / "gateway-stats.json", json.dumps(stats))


def run(spec: wire.RunSpec) -> int:
    """Body of the forked gateway process: paper, or Binance with `--live`."""
    if spec.live:
        from naive_mp.runtime.gateway_live import LiveGateway

        return LiveGateway(spec).run()
    return Gateway(spec).run()
