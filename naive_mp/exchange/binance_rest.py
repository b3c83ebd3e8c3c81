"""Signed REST calls through python-binance's `Client`, each outcome named.

python-binance raises `BinanceAPIException` for any non-2xx answer, lets a
timeout or a cut connection through as a `requests` error, retries nothing
and tracks no limits. `BinanceRest.call` turns every call into exactly one of:

- the answer;
- `ExchangeRefused(code, message)`: a definite no, nothing was done;
- `OutcomeUnknown`: a 5xx, `-1007`, `-1006`, a timeout or a cut connection:
  the exchange may have done it, so nothing may be assumed either way;
- `RateLimited` / `Banned`: 429 / 418, with how long to wait.

and does itself what is always safe: a `-1021` (our clock is off) resyncs
the clock and sends the same request again (it was refused, not carried
out); a 429 pauses every request for its `Retry-After` (one shared limiter)
and sends it again. `place` resolves an unknown outcome by asking for the
order by its client id for long enough, and only then places again with the
same client id: never blind.
"""

import logging
import threading
import time
from dataclasses import dataclass

import requests
from binance import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException

from naive_mp.core.messages import PlaceOrder
from naive_mp.core.money import fmt
from naive_mp.exchange.binance_limits import Limiter
from naive_mp.exchange.binance_urls import rest_root
from naive_mp.exchange.errors import ExchangeRefused

log = logging.getLogger("naive_mp.binance")

TIMEOUT_S = 10.0
ATTEMPTS = 5  # of one request through -1021s and 429s
NO_SUCH_ORDER = -2013
DUPLICATE = "Duplicate order sent."
UNKNOWN_CODES = (-1006, -1007)
ANSWERS_AN_ORDER = ("create_order", "get_order", "cancel_order")  # "unexpected response" / "timeout waiting for the backend": status unknown


class OutcomeUnknown(Exception):
    """No answer we can trust: the request may have been carried out."""


class RateLimited(Exception):
    def __init__(self, retry_after_s: float, message: str):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Banned(RateLimited):
    """418: the IP is banned until `retry_after_s` from now; nothing may be sent."""


@dataclass(frozen=True)
class Timing:
    """How long to keep asking about an order whose placing had no answer (tests shorten it)."""

    resolve_s: float = 30.0  # Binance may answer -2013 for a few seconds after accepting an order
    poll_s: float = 1.0
    rounds: int = 3  # unknown, then not found: place again with the same client id, at most this often


class BinanceRest:
    def __init__(self, key: str, secret: str, api_url: str, *, limiter: Limiter | None = None,
                 timeout_s: float = TIMEOUT_S, timing: Timing = Timing(), stop: threading.Event | None = None,
                 clock=time.time):
        self.client = Client(key, secret, ping=False, requests_params={"timeout": timeout_s})
        self.client.API_URL = rest_root(api_url)
        self.limiter = limiter or Limiter()
        self.timing = timing
        self.stop = stop or threading.Event()
        self.clock = clock

    # -- one request -------------------------------------------------------------

    def call(self, name: str, **params):
        """`Client.<name>(**params)`, with the outcomes the module docstring lists."""
        for _ in range(ATTEMPTS):
            self._wait_turn()
            try:
                answer = getattr(self.client, name)(**params)
            except BinanceAPIException as exc:
                self._after_error(exc)
                continue  # -1021 or 429: the request was refused; the same one again is safe
            except BinanceRequestException as exc:  # a 2xx whose body is not JSON
                raise OutcomeUnknown(f"{name}: unreadable answer ({exc})") from None
            except (requests.RequestException, OSError) as exc:
                raise OutcomeUnknown(f"{name}: {type(exc).__name__}: {exc}") from None
            self.limiter.note_headers(self._headers(self.client.response), self.clock())
            if name in ANSWERS_AN_ORDER and not (isinstance(answer, dict) and "orderId" in answer):
                raise OutcomeUnknown(f"{name}: an answer without an order ({str(answer)[:80]!r})")
            return answer
        raise RateLimited(self.limiter.wait_s(self.clock()) or 1.0, f"{name}: still refused after {ATTEMPTS} tries")

    def _wait_turn(self) -> None:
        now = self.clock()
        if self.limiter.banned(now):
            wait = self.limiter.banned_until - now
            raise Banned(wait, f"banned by Binance for {wait:.0f} s more: nothing is sent until then")
        wait = self.limiter.wait_s(now)
        if wait > 0 and self.stop.wait(wait):
            raise OutcomeUnknown("stopping")

    def _after_error(self, exc: BinanceAPIException) -> None:
        headers, now = self._headers(exc.response), self.clock()
        self.limiter.note_headers(headers, now)
        status = exc.status_code
        if status == 418:
            wait = self.limiter.note_ban(headers, now)
            log.critical("BINANCE BANNED THIS IP for %.0f s (418: %s): all placing stopped until then",
                         wait, exc.message)
            raise Banned(wait, f"418 {exc.message}") from None
        if status == 429:
            wait = self.limiter.note_retry_after(headers, now)
            log.warning("429 from Binance (%s): every request waits %.0f s", exc.message, wait)
            return
        if exc.code == -1021:
            try:
                self.sync_clock()
            except (BinanceAPIException, BinanceRequestException, requests.RequestException, OSError,
                    KeyError, TypeError, ValueError) as failed:
                raise OutcomeUnknown(f"-1021, and Binance's clock could not be read: {failed}") from None
            return
        message = exc.message if isinstance(exc.message, str) else str(exc.message)
        # No Binance error code (a proxy's or firewall's page, a 403): nothing says what happened.
        if status >= 500 or status == 403 or exc.code in UNKNOWN_CODES or not exc.code:
            raise OutcomeUnknown(f"{status} {exc.code} {message[:200]}") from None
        raise ExchangeRefused(int(exc.code), message) from None

    @staticmethod
    def _headers(response):
        return getattr(response, "headers", None) or {}

    def sync_clock(self) -> int:
        """Measure our clock against Binance's; signed requests carry the corrected time. The offset, ms."""
        before = self.clock()
        server = int(self.client.get_server_time()["serverTime"])
        after = self.clock()
        offset = server - int((before + after) / 2 * 1000)
        if abs(offset - self.client.timestamp_offset) > 100:
            log.warning("our clock is %+d ms off Binance's: signed requests corrected", -offset)
        self.client.timestamp_offset = offset
        return offset

    # -- orders --------------------------------------------------------------------

    def order(self, symbol: str, client_order_id: str) -> dict | None:
        """The order with this client id, or None when the exchange says it has none (-2013)."""
        try:
            return self.call("get_order", symbol=symbol, origClientOrderId=client_order_id)
        except ExchangeRefused as refused:
            if refused.code == NO_SUCH_ORDER:
                return None
            raise

    def place(self, command: PlaceOrder) -> tuple[dict, str]:
        """Place a LIMIT GTC order, exactly once: (Binance's order, how we know it).

        Raises ExchangeRefused for a definite no, RateLimited/Banned to try later,
        OutcomeUnknown when even asking could not settle it (nothing was placed blind).
        """
        uncertain = False  # once an attempt may have been booked, no later error is a clean "no"
        try:
            for round_ in range(1, self.timing.rounds + 1):
                try:
                    return self.call("create_order", symbol=command.symbol, side=command.side, type="LIMIT",
                                     timeInForce="GTC", quantity=fmt(command.quantity), price=fmt(command.price),
                                     newClientOrderId=command.client_order_id), "placed"
                except ExchangeRefused as refused:
                    if refused.message != DUPLICATE:
                        raise
                    log.warning("%s: Binance already has it open (%s): adopted", command.client_order_id, DUPLICATE)
                    uncertain = True
                    found = self.resolve(command)
                    if found is None:
                        raise OutcomeUnknown(f"{command.client_order_id}: a duplicate that cannot be found") from None
                    return found, "adopted"
                except OutcomeUnknown as unknown:
                    uncertain = True
                    log.warning("%s: placing had no answer (%s): asking Binance for it by client id",
                                command.client_order_id, unknown)
                found = self.resolve(command)
                if found is not None:
                    return found, "found after an unknown outcome"
                log.warning("%s: not on Binance after %.0f s of asking: placing it again, same client id "
                            "(round %d)", command.client_order_id, self.timing.resolve_s, round_ + 1)
            raise OutcomeUnknown(f"{command.client_order_id}: placing stayed unknown after {self.timing.rounds} rounds")
        except (ExchangeRefused, RateLimited) as exc:
            if not uncertain:
                raise
            # An earlier attempt may be booked (a -2010 now may be its funds, locked): never "refused".
            raise OutcomeUnknown(f"{command.client_order_id}: {exc} after an attempt whose outcome is unknown") from None

    def resolve(self, command: PlaceOrder) -> dict | None:
        """Ask for the order by client id until it shows or `resolve_s` passes; last, list the open orders."""
        deadline = self.clock() + self.timing.resolve_s
        while True:
            try:
                found = self.order(command.symbol, command.client_order_id)
                if found is not None:
                    return found
            except OutcomeUnknown:
                pass
            if self.clock() >= deadline:
                break
            if self.stop.wait(self.timing.poll_s):
                raise OutcomeUnknown("stopping")
        for order in self.call("get_open_orders", symbol=command.symbol):
            if order.get("clientOrderId") == command.client_order_id:
                return order
        return None

    def cancel(self, symbol: str, client_order_id: str) -> dict:
        return self.call("cancel_order", symbol=symbol, origClientOrderId=client_order_id)

    def open_orders(self, symbol: str) -> list[dict]:
        return self.call("get_open_orders", symbol=symbol)

    def trades_of(self, symbol: str, exchange_id: int) -> list[dict]:
        return self.call("get_my_trades", symbol=symbol, orderId=exchange_id, limit=1000)

    def balances(self, timeout_s: float | None = None) -> dict[str, tuple[str, str]]:
        """asset -> (free, locked), as Binance writes them."""
        extra = {"requests_params": {"timeout": timeout_s}} if timeout_s else {}
        account = self.call("get_account", **extra)
        return {b["asset"]: (b["free"], b["locked"]) for b in account.get("balances", ())}
