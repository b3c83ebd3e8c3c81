"""The live gateway's book of our orders on Binance: pure, what each answer and report means.

Sans-IO. Everything Binance says of one of our orders goes through here: the
answer to a place, an `executionReport` from the user data stream, an order
and its trades asked for over REST. Any of them may come late, twice, or in
another order (a stream report after a REST snapshot that already had it), so:

- fills count once, by trade id; cumulative quantities only grow;
- a status only moves forward (SENDING, NEW, PARTIALLY_FILLED, then an end);
- how an order ended is told to its trader once (`LiveOrder.told`), and only
  when every one of its fills is known: a BUY's fee comes out of what was
  bought, and the SELL must be for what is really held.

What the trader hears: `OrderFilled` (average price, with `received`, the base
asset the account got net of a fee taken in it), or `OrderCanceled` (of a SELL
that filled in part: with what remains). A BUY canceled after a part filled is
a fill of that part: the trader sells what it got.
"""

from decimal import Decimal

import msgspec

from naive_mp.core.messages import OrderCanceled, OrderFilled, PlaceOrder, Side
from naive_mp.core.money import EXACT, ZERO
from naive_mp.exchange.paper import Order

SENDING = "SENDING"  # asked for, the outcome not known yet (written before the request goes out)
REJECTED = "REJECTED"  # refused, or never reached the exchange: as if never placed
ENDED = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", REJECTED})
RANK = {SENDING: 0, "NEW": 1, "PENDING_NEW": 1, "PARTIALLY_FILLED": 2}  # anything else: an end (3)


def rank(status: str) -> int:
    return RANK.get(status, 3)


class LiveFill(msgspec.Struct, frozen=True, kw_only=True):
    trade_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str


class LiveOrder(msgspec.Struct, kw_only=True):
    """One order of ours on Binance, as far as we know it (stored as JSON, one row each)."""

    client_order_id: str
    symbol: str
    base_asset: str
    trader_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    local_id: int  # our order id: orders.csv's, in the order they were asked for
    placed_trade_id: int = 0
    status: str = SENDING
    exchange_id: int | None = None
    executed: Decimal = ZERO  # cumulative, as the exchange reports it
    quote: Decimal = ZERO  # cumulative quote quantity
    fills: list[LiveFill] = []
    told: bool = False  # its trader heard how it ended
    reason: str = ""

    @property
    def open(self) -> bool:
        return self.status not in ENDED

    @property
    def filled_from_fills(self) -> Decimal:
        return sum((f.quantity for f in self.fills), ZERO)

    @property
    def base_fee(self) -> Decimal:
        return sum((f.commission for f in self.fills if f.commission_asset == self.base_asset), ZERO)

    @property
    def fills_complete(self) -> bool:
        return self.filled_from_fills >= self.executed

    @property
    def last_trade_id(self) -> int:
        return max((f.trade_id for f in self.fills), default=0)

    def average_price(self) -> Decimal:
        if self.executed == 0:
            return self.price
        return EXACT.divide(self.quote, self.executed).normalize() if self.quote else self.price

    def received(self) -> Decimal | None:
        """For a BUY whose fee was taken in the base asset: what the account got. None otherwise."""
        if self.side != "BUY" or (self.base_fee == 0 and self.executed == self.quantity):
            return None
        return self.executed - self.base_fee

    def as_order(self) -> Order:
        """As orders.csv and the summaries list orders (a part-filled BUY canceled counts as filled)."""
        status = self.status
        if status == "PENDING_NEW" or status == SENDING:
            status = "NEW"
        filled = self.side == "BUY" and status != "FILLED" and not self.open and self.executed > 0
        quantity = self.executed if filled else self.quantity
        return Order(order_id=self.local_id, client_order_id=self.client_order_id, symbol=self.symbol,
                     trader_id=self.trader_id, side=self.side, price=self.average_price() if filled or status == "FILLED"
                     else self.price, quantity=quantity, status="FILLED" if filled else status,
                     placed_trade_id=self.placed_trade_id,
                     filled_trade_id=(self.last_trade_id or None) if filled or status == "FILLED" else None)


def new_order(command: PlaceOrder, base_asset: str, local_id: int, placed_trade_id: int) -> LiveOrder:
    return LiveOrder(client_order_id=command.client_order_id, symbol=command.symbol, base_asset=base_asset,
                     trader_id=command.trader_id, side=command.side, price=command.price,
                     quantity=command.quantity, local_id=local_id, placed_trade_id=placed_trade_id)


def _dec(value) -> Decimal:
    return Decimal(str(value))


def _advance(order: LiveOrder, status: str, executed=None, quote=None) -> None:
    # REJECTED is what we concluded, not what Binance said: Binance showing the order overrules it.
    if order.status == REJECTED or (rank(status) >= rank(order.status) and order.status not in ENDED):
        order.status, order.reason = status, ""
    if executed is not None and _dec(executed) > order.executed:
        order.executed = _dec(executed)
    if quote is not None and _dec(quote) > order.quote:
        order.quote = _dec(quote)


def _add_fill(order: LiveOrder, fill: LiveFill) -> None:
    if fill.trade_id >= 0 and all(f.trade_id != fill.trade_id for f in order.fills):
        order.fills = [*order.fills, fill]


def apply_answer(order: LiveOrder, answer: dict) -> None:
    """The exchange's answer to our place (or a REST order query): what it holds now."""
    order.exchange_id = int(answer["orderId"])
    for fill in answer.get("fills") or ():  # a place answered FULL: the fills it made at once
        _add_fill(order, LiveFill(trade_id=int(fill["tradeId"]), price=_dec(fill["price"]),
                                  quantity=_dec(fill["qty"]), commission=_dec(fill["commission"]),
                                  commission_asset=fill["commissionAsset"]))
    _advance(order, answer["status"], answer.get("executedQty"), answer.get("cummulativeQuoteQty"))


def apply_trades(order: LiveOrder, trades: list[dict]) -> None:
    """myTrades of the order: its fills, with their commissions."""
    for t in trades:
        if int(t["orderId"]) == order.exchange_id:
            _add_fill(order, LiveFill(trade_id=int(t["id"]), price=_dec(t["price"]), quantity=_dec(t["qty"]),
                                      commission=_dec(t["commission"]), commission_asset=t["commissionAsset"]))


def apply_report(order: LiveOrder, report: dict) -> None:
    """An executionReport of the user data stream."""
    if report.get("i") is not None:
        order.exchange_id = int(report["i"])
    if report.get("x") == "TRADE" and int(report.get("t", -1)) >= 0:
        _add_fill(order, LiveFill(trade_id=int(report["t"]), price=_dec(report["L"]), quantity=_dec(report["l"]),
                                  commission=_dec(report.get("n") or "0"), commission_asset=report.get("N") or ""))
    _advance(order, report["X"], report.get("z"), report.get("Z"))


def refuse(order: LiveOrder, reason: str) -> None:
    """Refused, or it never reached the exchange: as if never placed (the same client id may be sent again)."""
    order.status, order.reason = REJECTED, reason


def report_client_id(report: dict) -> str:
    """Whose report it is: a cancel's report names the canceled order in `C` (`c` is the cancel's own id)."""
    return report.get("C") or report["c"] if report.get("x") == "CANCELED" else report["c"]


def news(order: LiveOrder) -> OrderFilled | OrderCanceled | None:
    """What the trader must hear now, once: how its order ended, when all of it is known."""
    if order.told or order.open or order.status == REJECTED or not order.fills_complete:
        return None
    order.told = True
    if order.executed > 0 and (order.status == "FILLED" or order.side == "BUY"):
        return OrderFilled(client_order_id=order.client_order_id, order_id=order.local_id, side=order.side,
                           price=order.average_price(), quantity=order.executed, trade_id=order.last_trade_id,
                           received=order.received())
    remaining = order.quantity - order.executed if order.executed > 0 else None
    return OrderCanceled(client_order_id=order.client_order_id, side=order.side, remaining=remaining)


def trader_view(order: LiveOrder) -> str:
    """The status a trader asking about its order is told.

    PENDING_NEW while the outcome of its placing is not known. An order that
    ended with fills not all known yet is still PARTIALLY_FILLED: told FILLED
    now, the trader would sell before the fee taken from the BUY is known.
    A BUY canceled after a part filled is FILLED (for that part), as `news` says.
    """
    if order.status == SENDING:
        return "PENDING_NEW"
    if not order.open and order.executed > 0 and not order.fills_complete:
        return "PARTIALLY_FILLED"
    return order.as_order().status


def missing_fills(order: LiveOrder) -> bool:
    """Some fill of it is known by its cumulative quantity only: its trades must be asked for."""
    return order.executed > 0 and not order.fills_complete
