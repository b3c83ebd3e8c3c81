"""The gateway with `--live`: real orders on Binance, none placed twice, none lost.

The same process role as the paper gateway (runtime/gateway.py: sockets,
trade feed, results, metrics), with the paper book replaced by our orders on
Binance (exchange/binance_book.py), kept in the store and changed only here,
on the gateway's own thread, from what two helper threads post:

- the REST worker (exchange/binance_orders.py) places, asks and cancels, one
  request at a time through one limiter;
- the user data stream (exchange/binance_user.py) brings every executionReport.

A Place is answered at once: the order as it stands, or PENDING_NEW for a new
one, which is first written to the store as SENDING (so a gateway killed
while the request is out asks Binance about it when it comes back, instead
of forgetting it or placing it twice), then handed to the worker. A refusal
is published to the trader (`wire.Refused`); fills are published once, when
all of an order's fills are known. After every (re)subscription of the user
data stream, at start, and every `reconcile_s`, every open order is asked
for over REST, so no fill is missed in a gap.
"""

import logging
import os
import queue
import re
import time
from decimal import Decimal

from naive_mp import wire
from naive_mp.core.money import fmt
from naive_mp.core.messages import OrderCanceled, OrderFilled, OrderRejected
from naive_mp.exchange import binance_book as book
from naive_mp.exchange.binance_limits import Limiter
from naive_mp.exchange.binance_orders import (CancelJob, CheckFailed, CheckJob, OpenOrders, OpenOrdersJob,
                                              PlaceJob, Placed, Refused, RestWorker, Snapshot, Vanished)
from naive_mp.exchange.binance_rest import BinanceRest, Timing
from naive_mp.exchange.errors import ExchangeRefused
from naive_mp.exchange.binance_user import ExecutionReport, StreamDown, Subscribed, UserStream
from naive_mp.exchange import secrets
from naive_mp.report.symbols import split_symbol
from naive_mp.runtime.gateway import Gateway, SymbolFeed
from naive_mp.runtime.process import BootError
from naive_mp.store import Store

log = logging.getLogger("naive_mp.gateway")

FILTER_FAILURE = -1013
INSUFFICIENT = "insufficient balance"
BOOT_TIMEOUT_S = 3.0
KEY_REFUSED = (-1022, -2014, -2015)  # bad signature, bad key format, key refused (or IP, or permissions)
COMPLETE_AGAIN_S = 1.0  # an order whose fills are not all known: its trades asked for again after this
CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")  # Binance's rule for newClientOrderId
OUR_ID = re.compile(r"^(?P<symbol>[A-Z0-9]{2,20})-\d+-\d+-[BS]\d*$")


class LiveOrders:
    """What the shared gateway code reads of `self.exchange`: the orders, as orders.csv lists them."""

    def __init__(self, fee):
        self.by_client_id: dict[str, book.LiveOrder] = {}
        self.fee = fee
        self.fills = []

    @property
    def orders(self):
        return {o.local_id: o.as_order() for o in self.by_client_id.values()
                if o.status not in (book.SENDING, book.REJECTED)}

    def on_trade(self, symbol, trade_id, price):
        return []  # Binance matches, not us: fills come from the user data stream

    def find(self, client_order_id):
        return self.by_client_id.get(client_order_id)


class Outbox:
    """Where the helper threads post: a queue, and a pipe whose read end wakes the gateway's poll."""

    def __init__(self):
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def post(self, item) -> None:
        self.items.put(item)
        try:
            os.write(self.write_fd, b"!")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def take(self) -> list:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self.items.get_nowait())
            except queue.Empty:
                return out


class LiveGateway(Gateway):
    def __init__(self, spec: wire.RunSpec):
        super().__init__(spec)
        self.live = LiveOrders(self.exchange.fee)
        self.exchange = self.live
        self.outbox = Outbox()
        self.stream_up = False
        self.next_reconcile = 0.0
        self.later: list[tuple[float, object]] = []  # (when, job): checks to try again
        self.strangers: set[str] = set()  # orders of ours on Binance the run does not know
        self.placing: dict[str, int] = {}  # client id -> PlaceJobs handed to the worker, not answered yet
        self.completing: set[str] = set()  # client ids whose trades are asked for, to know every fill

    # -- boot and stop -------------------------------------------------------------

    def _restore(self) -> None:
        if getattr(self, "store", None) is not None:
            return  # done first thing in run(): the start's checks need the book
        self.store = Store(self.spec.run_dir)
        for order in self.store.live_orders():
            self.live.by_client_id[order.client_order_id] = order
        for symbol, record in self.store.book().feeds.items():
            self.feeds[symbol] = SymbolFeed(record)
        open_orders = [o for o in self.live.by_client_id.values() if o.open]
        if self.live.by_client_id:
            log.info("live book restored: %d orders, %d open or being placed: asking Binance about each",
                     len(self.live.by_client_id), len(open_orders))

    def run(self) -> int:
        keys = secrets.take(os.environ)
        if keys is None:
            raise BootError("no API keys were handed to the gateway (start --live reads them)")
        self._restore()
        timing, endpoints = self.spec.live_timing, self.spec.endpoints
        self.rest = BinanceRest(keys.key, keys.secret, endpoints.api_url, limiter=Limiter(),
                                timeout_s=timing.request_timeout_s,
                                timing=Timing(resolve_s=timing.resolve_s, poll_s=timing.poll_s, rounds=timing.rounds))
        self.worker = RestWorker(self.rest, self.outbox.post)
        self.user = UserStream(keys.key, keys.secret, endpoints.ws_api_url, self.outbox.post,
                               silence_s=self.spec.stream_silence_s, max_age_s=self.spec.stream_max_age_s,
                               clock_ms=lambda: int(time.time() * 1000) + self.rest.client.timestamp_offset)
        del keys
        self._check_account()
        self.worker.start()
        self.user.start()
        self._check_all("at start")
        self.worker.submit(OpenOrdersJob(tuple(self.spec.symbols)))
        try:
            return super().run()
        finally:
            self.user.close()
            self.worker.close()

    def _check_account(self) -> None:
        """Log the balances; a new run whose budgets the account cannot cover does not start."""
        fresh = not self.live.by_client_id
        try:  # before the first heartbeat: quick, or the supervisor takes us for hung
            balances = self.rest.balances(timeout_s=BOOT_TIMEOUT_S)
        except ExchangeRefused as refused:  # wrong or revoked keys, no permission: nothing could work
            raise BootError(f"Binance refused to show the account: {refused} (check the API key, its "
                            "permissions and IP restrictions)") from None
        except Exception as exc:  # noqa: BLE001 - said, and for a new run fatal: we cannot check the budget
            if fresh:
                raise BootError(f"cannot read the account's balances from Binance: {exc}") from None
            log.warning("cannot read the account's balances (%s); resuming anyway", exc)
            return
        held = {asset: (Decimal(free), Decimal(locked)) for asset, (free, locked) in balances.items()
                if Decimal(free) or Decimal(locked)}
        log.info("account balances (free/locked): %s", ", ".join(f"{a} {fmt(f)}/{fmt(l)}" for a, (f, l) in
                                                              sorted(held.items())) or "none")
        if not fresh:
            return  # our own open orders lock part of it: the budget was checked when the run began
        needed: dict[str, Decimal] = {}
        for symbol in self.spec.symbols:
            quote = split_symbol(symbol)[1]
            needed[quote] = needed.get(quote, Decimal(0)) + self.spec.settings[symbol].budget
        for quote, need in needed.items():
            free = held.get(quote, (Decimal(0), Decimal(0)))[0]
            if need > free:
                raise BootError(f"the budget ({fmt(need)} {quote} for {', '.join(self.spec.symbols)}) is more than "
                                f"the account's free {quote} ({fmt(free)}): lower budget, or fund the account")

    def _extra_fds(self) -> list[int]:
        return [self.outbox.read_fd]

    def _tick(self) -> None:
        for thread in (self.worker, self.user):
            if not thread.is_alive():  # crash: the supervisor restarts us, and the restart asks Binance again
                raise RuntimeError(f"the gateway's {thread.name} thread died")
        now = time.monotonic()
        if now >= self.next_reconcile:
            if self.next_reconcile:
                self._check_all("periodic check")
            self.next_reconcile = now + self.spec.live_timing.reconcile_s
        due = [job for when, job in self.later if when <= now]
        if due:
            self.later = [(when, job) for when, job in self.later if when > now]
            for job in due:
                self.worker.submit(job)

    def _describe(self, events: int) -> str:
        now = time.time()
        where = "testnet" if self.spec.testnet else "live"
        open_orders = sum(o.open for o in self.live.by_client_id.values())
        parts = [where, "user stream up" if self.stream_up else "USER STREAM DOWN", f"{open_orders} open"]
        if self.rest.limiter.banned(now):
            parts.append(f"BANNED by Binance for {self.rest.limiter.banned_until - now:.0f} s: no orders")
        if self.strangers:
            parts.append(f"{len(self.strangers)} unknown orders of ours on Binance")
        return ", ".join(parts)

    def _samples(self) -> list[wire.Sample]:
        out = super()._samples()
        now = time.time()
        out += [wire.Sample(name="naive_mp_user_stream_up", value=float(self.stream_up)),
                wire.Sample(name="naive_mp_user_stream_subscriptions", value=self.user.connections),
                wire.Sample(name="naive_mp_binance_ban_seconds",
                            value=max(0.0, self.rest.limiter.banned_until - now))]
        for symbol in self.spec.symbols:
            open_orders = sum(o.open and o.symbol == symbol for o in self.live.by_client_id.values())
            out.append(wire.Sample(name="naive_mp_orders_open", value=open_orders, labels={"symbol": symbol}))
        return out

    # -- requests from traders -------------------------------------------------------------

    def _answer(self, request) -> wire.GatewayReply:
        if isinstance(request, wire.Place):
            return self._place(request)
        order = self.live.find(request.client_order_id)
        if order is None or order.status == book.REJECTED:
            return wire.GatewayReply(req_id=request.req_id, code=-2013, reason="Order does not exist.")
        if isinstance(request, wire.Cancel) and order.open:
            self.worker.submit(CancelJob(order.symbol, order.client_order_id))
        return wire.GatewayReply(req_id=request.req_id, order=self._info(order))

    def _place(self, request: wire.Place) -> wire.GatewayReply:
        command = request.order
        order = self.live.find(command.client_order_id)
        if order is not None and order.status != book.REJECTED:  # a retry, a restarted trader: never twice
            return wire.GatewayReply(req_id=request.req_id, order=self._info(order))
        if not CLIENT_ID.fullmatch(command.client_order_id):  # Binance would refuse it: say so without asking
            log.error("%s: client order id %r is not one Binance takes (1-36 of [.A-Z:/a-z0-9_-]): a bug of ours; "
                      "that trader stops", command.symbol, command.client_order_id)
            return wire.GatewayReply(req_id=request.req_id, code=-1100,
                                     reason="Illegal characters found in parameter 'newClientOrderId'")
        if request.cause_ns:
            self.latency.observe((time.monotonic_ns() - request.cause_ns) / 1e9)
        feed = self.feeds.setdefault(command.symbol, SymbolFeed())
        local_id = order.local_id if order else 1 + max((o.local_id for o in self.live.by_client_id.values()),
                                                        default=0)
        order = book.new_order(command, split_symbol(command.symbol)[0], local_id, feed.last_trade_id)
        self.live.by_client_id[command.client_order_id] = order
        self._save(order)  # written before the request leaves: a gateway killed now asks Binance about it
        self.placing[command.client_order_id] = self.placing.get(command.client_order_id, 0) + 1
        self.worker.submit(PlaceJob(command))
        return wire.GatewayReply(req_id=request.req_id, order=self._info(order))

    @staticmethod
    def _info(order: book.LiveOrder) -> wire.OrderInfo:
        shown, status = order.as_order(), book.trader_view(order)
        return wire.OrderInfo(order_id=order.local_id, client_order_id=order.client_order_id, side=order.side,
                              price=shown.price, quantity=shown.quantity, status=status,
                              filled_trade_id=shown.filled_trade_id,
                              received=order.received() if status == "FILLED" else None,
                              executed=order.executed)

    # -- what the helper threads post --------------------------------------------------------

    def _on_fd(self, fd: int) -> None:
        if fd == self.outbox.read_fd:
            for item in self.outbox.take():
                try:
                    self._on_result(item)
                except Exception:  # an answer we did not foresee must not take the rest of the batch with it
                    log.exception("could not apply %s; the next check of open orders asks again", type(item).__name__)

    def _done_placing(self, client_order_id: str) -> None:
        left = self.placing.get(client_order_id, 0) - 1
        if left > 0:
            self.placing[client_order_id] = left
        else:
            self.placing.pop(client_order_id, None)

    def _on_result(self, item) -> None:
        if isinstance(item, (Placed, Refused)):
            self._done_placing(item.client_order_id)
        if isinstance(item, ExecutionReport):
            self._on_report(item.report)
        elif isinstance(item, Placed):
            self._on_placed(item)
        elif isinstance(item, Refused):
            self._on_refused(item)
        elif isinstance(item, Snapshot):
            self._on_snapshot(item)
        elif isinstance(item, Vanished):
            self._on_vanished(item)
        elif isinstance(item, OpenOrders):
            self._on_open_orders(item)
        elif isinstance(item, CheckFailed):
            log.warning("a check of orders could not be done (%s): again in %.0f s", item.reason, item.retry_after_s)
            self.later.append((time.monotonic() + item.retry_after_s, item.job))
        elif isinstance(item, Subscribed):
            self.stream_up = True
            # What happened while no stream was up (before the first one, too) is asked for now.
            self._check_all("the user data stream came back" if item.connection > 1 else "the user data stream is up")
        elif isinstance(item, StreamDown):
            self.stream_up = False

    def _on_placed(self, placed: Placed) -> None:
        order = self.live.find(placed.client_order_id)
        book.apply_answer(order, placed.answer)
        log.info("%s#%d: %s %s %s on Binance (order %s, %s)", order.symbol, order.trader_id, order.side,
                 order.client_order_id, placed.how, order.exchange_id, order.status)
        self._changed(order)

    def _on_refused(self, refused: Refused) -> None:
        order = self.live.find(refused.client_order_id)
        if order is None or order.status != book.SENDING:
            return  # Binance showed the order meanwhile (a report, a check): that is the news, not this
        retry = refused.retry_after_s
        if refused.unknown:  # it may exist: keep it SENDING, ask again later; the trader waits
            log.error("%s: whether Binance took it is still unknown (%s): asking again in %.0f s",
                      order.client_order_id, refused.reason, retry)
            self.later.append((time.monotonic() + retry, CheckJob(((order.symbol, order.client_order_id, True),),
                                                                    "unknown outcome")))
            return
        if refused.code == -2010 and INSUFFICIENT in refused.reason.lower():
            retry = self.spec.live_timing.insufficient_retry_s
        elif refused.code in KEY_REFUSED:  # a key revoked while running: a trader holding coins must not give up
            retry = self.spec.live_timing.key_retry_s
            log.error("BINANCE REFUSED OUR API KEY (%s %s): check it; orders are tried again every %.0f s",
                      refused.code, refused.reason, retry)
        key = (order.symbol, refused.code)
        self.refused[key] = self.refused.get(key, 0) + 1
        if refused.code == FILTER_FAILURE:
            log.error("%s: BINANCE REFUSED %s (%s %s): our order breaks a filter, a bug of ours; that trader "
                      "stops", order.symbol, order.client_order_id, refused.code, refused.reason)
        else:
            log.warning("%s: Binance refused %s (%s %s)%s", order.symbol, order.client_order_id, refused.code,
                        refused.reason, f": the trader tries again in {retry:.0f} s" if retry else "")
        book.refuse(order, f"{refused.code} {refused.reason}")
        self._save(order)
        event = OrderRejected(client_order_id=order.client_order_id, side=order.side, code=refused.code,
                              reason=refused.reason)
        self._publish(order, wire.Refused(event=event, retry_after_s=retry))

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        order = self.live.find(snapshot.client_order_id)
        if order is None:
            return
        self.completing.discard(order.client_order_id)  # asked: if fills are still missing, ask again later
        was = order.status
        book.apply_answer(order, snapshot.answer)
        book.apply_trades(order, snapshot.trades)
        if order.status != was:
            log.info("%s: %s on Binance (was %s here)", order.client_order_id, order.status, was)
        self._changed(order)

    def _on_vanished(self, vanished: Vanished) -> None:
        order = self.live.find(vanished.client_order_id)
        if order is None or order.status != book.SENDING or self.placing.get(order.client_order_id):
            return  # Binance accepted it, or a place of it is still out: a -2013 asked before is not news
        log.warning("%s: Binance never got it: the trader places it again", order.client_order_id)
        self._on_refused(Refused(order.client_order_id, -2013, "Order does not exist.", retry_after_s=0.1))

    def _on_report(self, report: dict) -> None:
        cid = book.report_client_id(report)
        order = self.live.find(cid)
        if order is None:
            self._stranger(report.get("s", ""), cid, report.get("X", "?"))
            return
        book.apply_report(order, report)
        self._changed(order)

    def _on_open_orders(self, found: OpenOrders) -> None:
        for answer in found.orders:
            cid = answer.get("clientOrderId", "")
            if self.live.find(cid) is None:
                self._stranger(found.symbol, cid, answer.get("status", "?"))

    def _stranger(self, symbol: str, cid: str, status: str) -> None:
        """An order on Binance the run has no record of: said loudly, left alone, never duplicated."""
        match = OUR_ID.match(cid)
        if match and match["symbol"] in self.spec.symbols and cid not in self.strangers:
            self.strangers.add(cid)
            log.error("Binance has %s %s (%s), named like ours, which this run has no record of: left alone; "
                      "a trader placing it would be answered 'Duplicate order sent.' and adopt it", symbol, cid, status)

    def _changed(self, order: book.LiveOrder) -> None:
        if book.missing_fills(order) and not order.open:
            if order.client_order_id not in self.completing:  # one ask at a time, not a loop burning weight
                self.completing.add(order.client_order_id)
                self.later.append((time.monotonic() + COMPLETE_AGAIN_S,
                                   CheckJob(((order.symbol, order.client_order_id, False),), "fills to complete")))
        else:
            self.completing.discard(order.client_order_id)
        news = book.news(order)
        self._save(order)  # committed before anyone hears of it
        if isinstance(news, OrderFilled):
            self.fills_published[order.symbol] = self.fills_published.get(order.symbol, 0) + 1
            log.info("%s#%d: %s %s filled: %s @ %s%s", order.symbol, order.trader_id, order.side,
                     order.client_order_id, f"{news.quantity:f}", f"{news.price:f}",
                     f", received {news.received:f}" if news.received is not None else "")
            self._publish(order, wire.Filled(fill=news))
        elif isinstance(news, OrderCanceled):
            log.warning("%s#%d: %s %s canceled on Binance", order.symbol, order.trader_id, order.side,
                        order.client_order_id)
            self._publish(order, wire.Canceled(event=news))

    def _publish(self, order: book.LiveOrder, message) -> None:
        self.updates.send(wire.update_topic(order.symbol, order.trader_id) + wire.encode(message))

    def _save(self, order: book.LiveOrder) -> None:
        self.store.save_live([order], {order.symbol: self.feeds[order.symbol].record()}
                             if order.symbol in self.feeds else None)

    def _check_all(self, why: str) -> None:
        orders = tuple((o.symbol, o.client_order_id, o.status == book.SENDING)
                       for o in self.live.by_client_id.values() if o.open)
        if orders:
            log.info("asking Binance about %d open orders (%s)", len(orders), why)
            self.worker.submit(CheckJob(orders, why))
