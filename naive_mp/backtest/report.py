"""What a run produced: the summary (strategy.md, "Reports") and the orders file."""

import csv
import io
from decimal import Decimal

import msgspec

from naive_mp.core.money import EXACT, ZERO, fmt
from naive_mp.exchange.paper import Order

ORDER_COLUMNS = ("order_id", "client_order_id", "symbol", "trader_id", "side", "price",
                 "quantity", "status", "placed_trade_id", "filled_trade_id")


class Summary(msgspec.Struct, kw_only=True):
    """A run's result for one symbol, or for the whole run."""

    symbol: str
    events: int = 0
    orders_placed: int = 0
    orders_filled: int = 0
    orders_open: int = 0
    cycles: int = 0
    max_traders: int = 0
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    position_qty: Decimal = ZERO
    position_cost: Decimal = ZERO
    last_price: Decimal | None = None


def summarize(symbol: str, orders: list[Order], fee: Decimal, events: int,
              max_traders: int, last_price: Decimal | None) -> Summary:
    """Summary of one symbol's orders (all of them, any status)."""
    s = Summary(symbol=symbol, events=events, max_traders=max_traders, last_price=last_price)
    filled_buys: dict[tuple[int, str], Order] = {}
    filled_sells: list[Order] = []
    for order in orders:
        s.orders_placed += 1
        s.orders_open += order.status == "NEW"
        if order.status != "FILLED":
            continue
        s.orders_filled += 1
        s.fees = EXACT.add(s.fees, EXACT.multiply(fee, EXACT.multiply(order.price, order.quantity)))
        cycle_key = (order.trader_id, _cycle_of(order))  # same trader and cycle
        if order.side == "BUY":
            filled_buys[cycle_key] = order
        else:
            filled_sells.append(order)
    for sell in filled_sells:
        s.cycles += 1
        buy = filled_buys.pop((sell.trader_id, _cycle_of(sell)), None)
        if buy is not None:  # None only if the exchange forgot the BUY (a paper book lost in a crash)
            s.realized_pnl = EXACT.add(s.realized_pnl, _cycle_pnl(buy, sell, fee))
    for buy in filled_buys.values():
        s.position_qty = EXACT.add(s.position_qty, buy.quantity)
        s.position_cost = EXACT.add(s.position_cost, EXACT.multiply(buy.price, buy.quantity))
    return s


def cycle_pnls(orders: list[Order], fee: Decimal) -> list[Decimal]:
    """The P&L of each completed cycle (a filled SELL and its filled BUY), in order of the SELLs."""
    buys = {(o.trader_id, _cycle_of(o)): o for o in orders if o.side == "BUY" and o.status == "FILLED"}
    sells = [o for o in orders if o.side == "SELL" and o.status == "FILLED"]
    return [_cycle_pnl(buys[key], sell, fee) for sell in sells if (key := (sell.trader_id, _cycle_of(sell))) in buys]


def _cycle_of(order: Order) -> str:
    """SYMBOL-TRADER-CYCLE of a client order id (its side, and a SELL's try number, cut off)."""
    return order.client_order_id.rsplit("-", 1)[0]


def _cycle_pnl(buy: Order, sell: Order, fee: Decimal) -> Decimal:
    q = sell.quantity
    bought, sold = EXACT.multiply(buy.price, q), EXACT.multiply(sell.price, q)
    fees = EXACT.add(EXACT.multiply(fee, bought), EXACT.multiply(fee, sold))
    return EXACT.subtract(EXACT.subtract(sold, bought), fees)


def combine(summaries: list[Summary]) -> Summary:
    """One run-wide summary; max_traders and last_price of a single symbol pass through."""
    total = Summary(symbol=",".join(s.symbol for s in summaries))
    for s in summaries:
        for key in ("events", "orders_placed", "orders_filled", "orders_open", "cycles",
                    "realized_pnl", "fees", "position_qty", "position_cost"):
            value = getattr(s, key)
            add = EXACT.add if isinstance(value, Decimal) else int.__add__
            setattr(total, key, add(getattr(total, key), value))
        total.max_traders = max(total.max_traders, s.max_traders)
    if len(summaries) == 1:
        total.last_price = summaries[0].last_price
    return total


def summary_dict(summary: Summary) -> dict:
    """JSON-ready: decimals as plain strings."""
    return {key: fmt(value) if isinstance(value, Decimal) else value
            for key, value in msgspec.structs.asdict(summary).items()}


def orders_csv(orders: list[Order]) -> str:
    """The orders file: header, then one row per order sorted by order_id."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ORDER_COLUMNS)
    for o in sorted(orders, key=lambda o: o.order_id):
        writer.writerow((o.order_id, o.client_order_id, o.symbol, o.trader_id, o.side,
                         fmt(o.price), fmt(o.quantity), o.status, o.placed_trade_id,
                         "" if o.filled_trade_id is None else o.filled_trade_id))
    return out.getvalue()
