"""A backtest's result per symbol, as a person reads it: each amount in its own currency.

Beside the summary of strategy.md ("Reports") it gives the period the tapes
cover, the win rate of completed cycles, the unrealized P&L of what is held
at the last price, the return on the symbol's budget and the largest fall of
equity (cash plus holdings at market) from a previous high. Different symbols
are never added together unless they are quoted in the same currency.
"""

import datetime
from decimal import Decimal

import msgspec
import numpy as np

from naive_mp.backtest.report import Summary, cycle_pnls
from naive_mp.core.money import EXACT, ZERO, fmt
from naive_mp.exchange.paper import Fill, Order

# Longest first, so that ...FDUSD is not read as ...USD.
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "USD", "JPY")


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a Binance symbol: XRPUSDT -> (XRP, USDT); unknown quotes: (symbol, '?')."""
    for quote in sorted(QUOTES, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "?"


class SymbolReport(msgspec.Struct, kw_only=True):
    """One symbol's result; amounts in `quote` unless named otherwise (position_qty is in `base`)."""

    symbol: str
    base: str
    quote: str
    period_start: str | None = None  # UTC, ISO 8601, of the first trade of the tapes
    period_end: str | None = None
    wins: int = 0
    win_rate: Decimal | None = None  # fraction of completed cycles with a positive P&L
    unrealized_pnl: Decimal = ZERO
    roi: Decimal | None = None  # (realized + unrealized) / budget
    max_drawdown: Decimal = ZERO
    budget: Decimal = ZERO


class PriceTrack(msgspec.Struct, kw_only=True):
    """The trades of one symbol's tapes, for the equity curve: ids, prices in units, and the period."""

    ids: list  # numpy arrays, one per tape
    prices: list
    decimals: list
    first_time_us: int | None = None
    last_time_us: int | None = None

    def add(self, tape) -> None:
        if len(tape) == 0:
            return
        self.ids.append(tape.ids)
        self.prices.append(tape.prices)
        self.decimals.append(tape.price_decimals)
        first, last = int(tape.times_us[0]), int(tape.times_us[-1])
        self.first_time_us = first if self.first_time_us is None else min(self.first_time_us, first)
        self.last_time_us = last if self.last_time_us is None else max(self.last_time_us, last)


def _iso(time_us: int | None) -> str | None:
    if time_us is None:
        return None
    moment = datetime.datetime.fromtimestamp(time_us / 1e6, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report(summary: Summary, orders: list[Order], fills: list[Fill], fee: Decimal, budget: Decimal,
           track: PriceTrack) -> SymbolReport:
    """The person's view of one symbol, from backtest's summary, its orders and fills, and its prices."""
    base, quote = split_symbol(summary.symbol)
    pnls = cycle_pnls(orders, fee)
    wins = sum(p > 0 for p in pnls)
    unrealized = ZERO
    if summary.last_price is not None:
        unrealized = EXACT.subtract(EXACT.multiply(summary.position_qty, summary.last_price), summary.position_cost)
    total = EXACT.add(summary.realized_pnl, unrealized)
    return SymbolReport(
        symbol=summary.symbol, base=base, quote=quote, budget=budget,
        period_start=_iso(track.first_time_us), period_end=_iso(track.last_time_us),
        wins=wins, win_rate=EXACT.divide(Decimal(wins), Decimal(len(pnls))) if pnls else None,
        unrealized_pnl=unrealized, roi=EXACT.divide(total, budget) if budget else None,
        max_drawdown=max_drawdown(fills, track))


def max_drawdown(fills: list[Fill], track: PriceTrack) -> Decimal:
    """The largest fall of equity from an earlier high, trade by trade (exact at the two trades it spans).

    Equity is cash (0 at the start; fills pay and receive, fees included) plus
    the quantity held valued at each trade's price. Floats find the worst pair
    of trades quickly; the amount itself is computed exactly there.
    """
    if not track.ids or not fills:
        return ZERO
    ids = np.concatenate(track.ids)
    prices = np.concatenate([p / 10.0 ** d for p, d in zip(track.prices, track.decimals)])
    cash_step, qty_step = np.zeros(len(ids)), np.zeros(len(ids))
    where = np.searchsorted(ids, [f.trade_id for f in fills])
    for f, at in zip(fills, where):
        sign = 1 if f.side == "BUY" else -1
        cash_step[at] -= sign * float(f.price * f.quantity) + float(f.fee)
        qty_step[at] += sign * float(f.quantity)
    equity = np.cumsum(cash_step) + np.cumsum(qty_step) * prices
    peaks = np.maximum.accumulate(equity)
    low = int(np.argmax(peaks - equity))
    if peaks[low] - equity[low] <= 0:
        return ZERO
    high = int(np.argmax(equity[: low + 1]))
    exact = [_equity_at(int(ids[i]), _price(track, i), fills) for i in (high, low)]
    return max(ZERO, EXACT.subtract(exact[0], exact[1]))


def _price(track: PriceTrack, index: int) -> Decimal:
    for ids, prices, decimals in zip(track.ids, track.prices, track.decimals):
        if index < len(ids):
            return Decimal(int(prices[index])).scaleb(-decimals)
        index -= len(ids)
    raise IndexError(index)


def _equity_at(trade_id: int, price: Decimal, fills: list[Fill]) -> Decimal:
    cash, qty = ZERO, ZERO
    for f in fills:
        if f.trade_id > trade_id:
            continue
        notional = EXACT.multiply(f.price, f.quantity)
        if f.side == "BUY":
            cash, qty = EXACT.subtract(cash, EXACT.add(notional, f.fee)), EXACT.add(qty, f.quantity)
        else:
            cash, qty = EXACT.add(cash, EXACT.subtract(notional, f.fee)), EXACT.subtract(qty, f.quantity)
    return EXACT.add(cash, EXACT.multiply(qty, price))


def report_dict(summary: Summary, extra: SymbolReport) -> dict:
    """backtest's --json keys, then the report's (decimals as plain strings)."""
    data = {k: fmt(v) if isinstance(v, Decimal) else v for k, v in msgspec.structs.asdict(summary).items()}
    for key, value in msgspec.structs.asdict(extra).items():
        data[key] = fmt(value) if isinstance(value, Decimal) else value
    return data


TABLE_COLUMNS = ("SYMBOL", "PERIOD (UTC)", "TRADES", "ORDERS", "CYCLES", "WON", "REALIZED", "UNREALIZED", "ROI",
                 "MAX DRAWDOWN", "FEES")


def table(summaries: list[Summary], reports: list[SymbolReport], elapsed_s: float) -> str:
    """One row per symbol, each amount with its currency; a total row per quote currency held by several."""
    rows = [TABLE_COLUMNS] + table_rows(summaries, reports)
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    return "\n".join(lines + held_lines(summaries, reports) + [f"elapsed {elapsed_s:.3f} s"])


def table_rows(summaries: list[Summary], reports: list[SymbolReport]) -> list[tuple[str, ...]]:
    """The table's rows under TABLE_COLUMNS: one per symbol, then a total per quote currency held by several."""
    rows = [_row(s, r) for s, r in zip(summaries, reports)]
    by_quote: dict[str, list[int]] = {}
    for i, r in enumerate(reports):
        by_quote.setdefault(r.quote, []).append(i)
    for quote, members in by_quote.items():
        if len(members) > 1 and quote != "?":
            rows.append(_total(quote, [summaries[i] for i in members], [reports[i] for i in members]))
    return rows


def held_lines(summaries: list[Summary], reports: list[SymbolReport]) -> list[str]:
    """What each symbol still holds at the end, one line each (symbols holding nothing have none)."""
    return [f"{s.symbol}: {fmt(s.position_qty)} {r.base} held, bought for {fmt(s.position_cost)} {r.quote}, "
            f"last price {fmt(s.last_price) if s.last_price is not None else '-'} {r.quote}"
            for s, r in zip(summaries, reports) if s.position_qty]


def _period(r: SymbolReport) -> str:
    if r.period_start is None:
        return "-"
    start, end = (p.replace("T", " ").rstrip("Z")[:16] for p in (r.period_start, r.period_end))
    return f"{start} .. {end[11:] if end[:10] == start[:10] else end}"


def _money(value: Decimal, quote: str) -> str:
    return f"{fmt(value)} {quote}"


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{EXACT.multiply(value, 100):.2f}%"


def _row(s: Summary, r: SymbolReport) -> tuple[str, ...]:
    return (s.symbol, _period(r), f"{s.events:,}", f"{s.orders_placed:,} ({s.orders_open} open)", f"{s.cycles:,}",
            f"{r.wins} ({_pct(r.win_rate)})", _money(s.realized_pnl, r.quote), _money(r.unrealized_pnl, r.quote),
            _pct(r.roi), _money(r.max_drawdown, r.quote), _money(s.fees, r.quote))


def _total(quote: str, summaries: list[Summary], reports: list[SymbolReport]) -> tuple[str, ...]:
    add = lambda values: sum(values, ZERO)  # noqa: E731
    budget = add(r.budget for r in reports)
    realized, unrealized = add(s.realized_pnl for s in summaries), add(r.unrealized_pnl for r in reports)
    cycles, wins = sum(s.cycles for s in summaries), sum(r.wins for r in reports)
    return (f"total {quote}", "", f"{sum(s.events for s in summaries):,}",
            f"{sum(s.orders_placed for s in summaries):,} ({sum(s.orders_open for s in summaries)} open)",
            f"{cycles:,}", f"{wins} ({_pct(EXACT.divide(Decimal(wins), Decimal(cycles)) if cycles else None)})",
            _money(realized, quote), _money(unrealized, quote),
            _pct(EXACT.divide(EXACT.add(realized, unrealized), budget) if budget else None), "-",
            _money(add(s.fees for s in summaries), quote))
