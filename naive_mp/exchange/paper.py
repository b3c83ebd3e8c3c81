"""The paper exchange: a matching engine for LIMIT GTC orders, like Binance's.

Sans-IO and deterministic. Orders are checked against the symbol's filters
and refused with Binance's codes and messages; a resting order fills in full
at its limit when a later trade prints through it (inclusive); fees are
charged in the quote currency. Every fill is kept, and with balances tracked
the ledger conserves money to the last digit.
"""

from decimal import Decimal

import msgspec

from naive_mp.core.messages import OrderFilled, PlaceOrder, Side
from naive_mp.core.money import EXACT, ZERO, is_multiple
from naive_mp.core.settings import Filters
from naive_mp.exchange.errors import ExchangeRefused  # noqa: F401  (here first; kept importable)




class Order(msgspec.Struct, kw_only=True):
    """An order as the exchange keeps it."""

    order_id: int
    client_order_id: str
    symbol: str
    trader_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    status: str = "NEW"
    placed_trade_id: int = 0
    filled_trade_id: int | None = None


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One fill in the ledger; `fee` is in the quote currency."""

    order_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    trade_id: int


def filter_failure(filters: Filters, price: Decimal, quantity: Decimal) -> str | None:
    """Binance's -1013 message for an order the filters refuse, or None."""
    if not price.is_finite() or price <= 0 or not is_multiple(price, filters.tick_size):
        return "Filter failure: PRICE_FILTER"
    if not quantity.is_finite() or quantity < filters.min_qty or quantity <= 0 \
            or not is_multiple(quantity, filters.step_size):
        return "Filter failure: LOT_SIZE"
    if EXACT.multiply(price, quantity) < filters.min_notional:
        return "Filter failure: NOTIONAL"
    return None


class Balances(msgspec.Struct, kw_only=True):
    """Free and reserved amounts of one symbol's two assets, in exact decimals."""

    quote: Decimal
    base: Decimal = ZERO
    quote_reserved: Decimal = ZERO
    base_reserved: Decimal = ZERO


class PaperExchange:
    """All symbols' books, orders and fills for one run."""

    def __init__(self, filters: dict[str, Filters], fee: Decimal, quote_balance: Decimal | None = None):
        self.filters = dict(filters)
        self.fee = fee
        self.orders: dict[int, Order] = {}
        self.fills: list[Fill] = []
        # open orders by symbol, in placement order; and client id -> open order
        self._open: dict[str, list[Order]] = {}
        self._open_by_client_id: dict[str, Order] = {}
        self._latest_by_client_id: dict[str, Order] = {}  # any status: answers a retry at once
        self._quote_start = quote_balance
        self.balances: dict[str, Balances] = {}

    # -- placing ----------------------------------------------------------

    def place(self, command: PlaceOrder, trade_id: int) -> Order:
        """Accept `command` on the trade event `trade_id`, or raise ExchangeRefused.

        The order rests from the next trade event on.
        """
        filters = self.filters.get(command.symbol)
        if filters is None:
            raise ExchangeRefused(-1121, "Invalid symbol.")
        failure = filter_failure(filters, command.price, command.quantity)
        if failure:
            raise ExchangeRefused(-1013, failure)
        if command.client_order_id in self._open_by_client_id:
            raise ExchangeRefused(-2010, "Duplicate order sent.")
        self._reserve(command)
        order = Order(
            order_id=len(self.orders) + 1,
            client_order_id=command.client_order_id,
            symbol=command.symbol,
            trader_id=command.trader_id,
            side=command.side,
            price=command.price,
            quantity=command.quantity,
            placed_trade_id=trade_id,
        )
        self.orders[order.order_id] = order
        self._open.setdefault(command.symbol, []).append(order)
        self._open_by_client_id[order.client_order_id] = order
        self._latest_by_client_id[order.client_order_id] = order
        return order

    def _reserve(self, command: PlaceOrder) -> None:
        """Check, then commit: an unaffordable order changes nothing.

        Without a start balance nothing is refused, and the wallet starts at 0:
        its quote goes negative by what was spent, so the ledger still balances.
        """
        wallet = self.balances.setdefault(command.symbol, Balances(quote=self._quote_start or ZERO))
        refuse = self._quote_start is not None
        if command.side == "BUY":
            cost = self._buy_cost(command.price, command.quantity)
            if refuse and cost > wallet.quote:
                raise ExchangeRefused(-2010, "Account has insufficient balance for requested action.")
            wallet.quote = EXACT.subtract(wallet.quote, cost)
            wallet.quote_reserved = EXACT.add(wallet.quote_reserved, cost)
        else:
            if refuse and command.quantity > wallet.base:
                raise ExchangeRefused(-2010, "Account has insufficient balance for requested action.")
            wallet.base = EXACT.subtract(wallet.base, command.quantity)
            wallet.base_reserved = EXACT.add(wallet.base_reserved, command.quantity)

    def _buy_cost(self, price: Decimal, quantity: Decimal) -> Decimal:
        notional = EXACT.multiply(price, quantity)
        return EXACT.add(notional, EXACT.multiply(notional, self.fee))

    # -- asking and cancelling ---------------------------------------------

    def find(self, client_order_id: str) -> Order | None:
        """The open order with this client id, else the latest order that had it."""
        return self._open_by_client_id.get(client_order_id) or self._latest_by_client_id.get(client_order_id)

    def cancel(self, client_order_id: str) -> Order:
        """Cancel an open order (Binance -2011 when there is none)."""
        order = self._open_by_client_id.get(client_order_id)
        if order is None:
            raise ExchangeRefused(-2011, "Unknown order sent.")
        self._close(order, "CANCELED")
        self._release(order)
        return order

    def _release(self, order: Order) -> None:
        wallet = self.balances[order.symbol]
        if order.side == "BUY":
            cost = self._buy_cost(order.price, order.quantity)
            wallet.quote_reserved = EXACT.subtract(wallet.quote_reserved, cost)
            wallet.quote = EXACT.add(wallet.quote, cost)
        else:
            wallet.base_reserved = EXACT.subtract(wallet.base_reserved, order.quantity)
            wallet.base = EXACT.add(wallet.base, order.quantity)

    def _close(self, order: Order, status: str) -> None:
        order.status = status
        self._open[order.symbol].remove(order)
        del self._open_by_client_id[order.client_order_id]

    # -- matching -------------------------------------------------------

    def crossed(self, symbol: str, trade_id: int, price: Decimal) -> list[Order]:
        """Open orders this trade fills: price priority, then placement order."""
        hits = [
            o for o in self._open.get(symbol, ())
            if o.placed_trade_id != trade_id
            and (price <= o.price if o.side == "BUY" else price >= o.price)
        ]
        buys = sorted((o for o in hits if o.side == "BUY"), key=lambda o: (-o.price, o.order_id))
        sells = sorted((o for o in hits if o.side == "SELL"), key=lambda o: (o.price, o.order_id))
        return buys + sells

    def on_trade(self, symbol: str, trade_id: int, price: Decimal) -> list[OrderFilled]:
        """Fill every resting order this trade prints through."""
        return [self._fill(order, trade_id) for order in self.crossed(symbol, trade_id, price)]

    def _fill(self, order: Order, trade_id: int) -> OrderFilled:
        notional = EXACT.multiply(order.price, order.quantity)
        fee = EXACT.multiply(notional, self.fee)
        self._close(order, "FILLED")
        order.filled_trade_id = trade_id
        self.fills.append(Fill(order_id=order.order_id, side=order.side, price=order.price,
                               quantity=order.quantity, fee=fee, trade_id=trade_id))
        self._settle(order, notional, fee)
        return OrderFilled(client_order_id=order.client_order_id, order_id=order.order_id,
                           side=order.side, price=order.price, quantity=order.quantity, trade_id=trade_id)

    def _settle(self, order: Order, notional: Decimal, fee: Decimal) -> None:
        wallet = self.balances[order.symbol]
        if order.side == "BUY":
            wallet.quote_reserved = EXACT.subtract(wallet.quote_reserved, EXACT.add(notional, fee))
            wallet.base = EXACT.add(wallet.base, order.quantity)
        else:
            wallet.base_reserved = EXACT.subtract(wallet.base_reserved, order.quantity)
            wallet.quote = EXACT.add(wallet.quote, EXACT.subtract(notional, fee))

    def restore(self, orders: list[Order], fills: list[Fill], balances: dict[str, Balances]) -> None:
        """Take back a stored book (orders in placement order): the exchange goes on as it was."""
        self.orders = {o.order_id: o for o in orders}
        self.fills = list(fills)
        self.balances = dict(balances)
        self._open, self._open_by_client_id, self._latest_by_client_id = {}, {}, {}
        for order in sorted(orders, key=lambda o: o.order_id):
            self._latest_by_client_id[order.client_order_id] = order
            if order.status == "NEW":
                self._open.setdefault(order.symbol, []).append(order)
                self._open_by_client_id[order.client_order_id] = order

    def open_orders(self, symbol: str) -> list[Order]:
        """Open orders of a symbol, in placement order."""
        return list(self._open.get(symbol, ()))
