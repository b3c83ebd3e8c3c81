"""The live gateway's REST worker: one thread, one request at a time, results posted back.

The gateway's loop must keep answering traders and beating while a place waits
out a timeout, a `Retry-After` or 30 s of asking for an order whose reply was
lost; so every REST request runs here, in order, through one `BinanceRest`
(and so one limiter), and each job's outcome is posted to the gateway as a
plain value it applies to the book (binance_book) on its own thread.
"""

import logging
import queue
import threading
from dataclasses import dataclass
from decimal import Decimal

from naive_mp.core.messages import PlaceOrder
from naive_mp.exchange.binance_rest import Banned, BinanceRest, OutcomeUnknown, RateLimited
from naive_mp.exchange.errors import ExchangeRefused

log = logging.getLogger("naive_mp.binance")


# -- jobs ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceJob:
    command: PlaceOrder


@dataclass(frozen=True)
class CheckJob:
    """Ask for these orders (symbol, client id, whether it may never have reached Binance)."""

    orders: tuple[tuple[str, str, bool], ...]
    why: str


@dataclass(frozen=True)
class OpenOrdersJob:
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class CancelJob:
    symbol: str
    client_order_id: str


# -- results -------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    client_order_id: str
    answer: dict
    how: str


@dataclass(frozen=True)
class Refused:
    client_order_id: str
    code: int
    reason: str
    retry_after_s: float = 0.0  # > 0: not for good, try again then
    unknown: bool = False  # the outcome is still not known: the order may exist


@dataclass(frozen=True)
class Snapshot:
    client_order_id: str
    answer: dict
    trades: list


@dataclass(frozen=True)
class Vanished:
    """Binance has no order with this client id (-2013), after asking long enough."""

    client_order_id: str


@dataclass(frozen=True)
class OpenOrders:
    symbol: str
    orders: list


@dataclass(frozen=True)
class CheckFailed:
    """A check could not be done now (rate limit, ban, no answer): the gateway asks again later."""

    job: object
    retry_after_s: float
    reason: str


class RestWorker(threading.Thread):
    def __init__(self, rest: BinanceRest, post):
        super().__init__(name="binance-rest", daemon=True)
        self.rest, self.post = rest, post
        self.jobs: queue.Queue = queue.Queue()

    def submit(self, job) -> None:
        self.jobs.put(job)

    def close(self) -> None:
        self.rest.stop.set()
        self.jobs.put(None)

    def run(self) -> None:
        try:  # as the async client does once; a -1021 later resyncs anyway
            self.rest.sync_clock()
        except Exception as exc:  # noqa: BLE001 - not fatal: signed requests say when the clock is off
            log.warning("could not read Binance's clock at start (%s); going on", exc)
        while not self.rest.stop.is_set():
            job = self.jobs.get()
            if job is None:
                return
            try:
                self._do(job)
            except Exception:  # a bug here must not silently stop every order: say it, go on
                log.exception("REST job %s failed", type(job).__name__)
                if isinstance(job, PlaceJob):  # it may have been booked: find out, never place it again blind
                    self.post(Refused(job.command.client_order_id, -1007, "internal error",
                                      retry_after_s=self.rest.timing.resolve_s, unknown=True))
                else:
                    self.post(CheckFailed(job, 5.0, "internal error"))

    def _do(self, job) -> None:
        if isinstance(job, PlaceJob):
            self.post(self._place(job.command))
        elif isinstance(job, CheckJob):
            self._check(job)
        elif isinstance(job, OpenOrdersJob):
            self._open_orders(job)
        elif isinstance(job, CancelJob):
            self._cancel(job)

    def _place(self, command: PlaceOrder):
        cid = command.client_order_id
        try:
            answer, how = self.rest.place(command)
            return Placed(cid, answer, how)
        except ExchangeRefused as refused:
            return Refused(cid, refused.code, refused.message)
        except Banned as banned:
            return Refused(cid, -1003, str(banned), retry_after_s=banned.retry_after_s)
        except RateLimited as limited:
            return Refused(cid, -1003, str(limited), retry_after_s=limited.retry_after_s)
        except OutcomeUnknown as unknown:
            return Refused(cid, -1007, f"outcome unknown: {unknown}", retry_after_s=self.rest.timing.resolve_s,
                           unknown=True)

    def _check(self, job: CheckJob) -> None:
        """Ask for each order once; those that may never have been sent are then asked for together,
        for `resolve_s` (Binance can answer -2013 for a few seconds after accepting), so N such
        orders after a restart cost one wait, not N."""
        doubtful = []
        for index, (symbol, cid, maybe_never_sent) in enumerate(job.orders):
            try:
                answer = self.rest.order(symbol, cid)
                if answer is not None:
                    self._snapshot(symbol, cid, answer)
                elif maybe_never_sent:
                    doubtful.append((symbol, cid))
                else:
                    self.post(Vanished(cid))
            except (RateLimited, OutcomeUnknown, ExchangeRefused) as exc:
                self._check_later(job.orders[index:] + tuple((s, c, True) for s, c in doubtful), job.why, exc)
                return
        if doubtful:
            self._settle(doubtful, job.why)

    def _settle(self, doubtful: list[tuple[str, str]], why: str) -> None:
        deadline = self.rest.clock() + self.rest.timing.resolve_s
        try:
            while doubtful and self.rest.clock() < deadline:
                if self.rest.stop.wait(self.rest.timing.poll_s):
                    return
                for symbol, cid in list(doubtful):
                    answer = self.rest.order(symbol, cid)
                    if answer is not None:
                        doubtful.remove((symbol, cid))
                        self._snapshot(symbol, cid, answer)
            for symbol in sorted({s for s, _ in doubtful}):  # last, the open orders, as place() does
                open_now = {o.get("clientOrderId"): o for o in self.rest.open_orders(symbol)}
                for cid in [c for s, c in doubtful if s == symbol]:
                    if cid in open_now:
                        self._snapshot(symbol, cid, open_now[cid])
                    else:
                        self.post(Vanished(cid))
        except (RateLimited, OutcomeUnknown, ExchangeRefused) as exc:
            self._check_later(tuple((s, c, True) for s, c in doubtful), why, exc)

    def _snapshot(self, symbol: str, cid: str, answer: dict) -> None:
        executed = Decimal(str(answer.get("executedQty") or "0"))
        trades = self.rest.trades_of(symbol, int(answer["orderId"])) if executed > 0 else []
        self.post(Snapshot(cid, answer, trades))

    def _check_later(self, orders: tuple, why: str, exc: Exception) -> None:
        self.post(CheckFailed(CheckJob(orders, why), getattr(exc, "retry_after_s", 2.0), str(exc)))

    def _open_orders(self, job: OpenOrdersJob) -> None:
        for index, symbol in enumerate(job.symbols):
            try:
                self.post(OpenOrders(symbol, self.rest.open_orders(symbol)))
            except (RateLimited, OutcomeUnknown, ExchangeRefused) as exc:
                self.post(CheckFailed(OpenOrdersJob(job.symbols[index:]), getattr(exc, "retry_after_s", 2.0),
                                      str(exc)))
                return

    def _cancel(self, job: CancelJob) -> None:
        try:
            self.rest.cancel(job.symbol, job.client_order_id)
        except (RateLimited, OutcomeUnknown, ExchangeRefused) as exc:
            log.warning("cancel of %s: %s", job.client_order_id, exc)
        # what it did arrives as a report on the user data stream, or in the next check
        self.submit(CheckJob(((job.symbol, job.client_order_id, False),), "after a cancel"))


