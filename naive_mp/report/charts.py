"""Charts of one symbol's run, for a person: price with every order, equity and drawdown, traders alive.

Two halves. The data preparation is plain numpy over the tapes' trades and
the run's orders and fills (tested on its own): the price series, order
markers, equity and drawdown trade by trade, the count of traders alive, and
a downsampling that keeps every extreme. The drawing puts them on one
matplotlib figure with a shared time axis (page.py makes the HTML and PNG).

Time is the tapes' trade time (UTC); an order's moment is the time of the
trade it was placed on, or filled on. Matplotlib is imported here (and in
page.py) only, so that commands that draw nothing do not pay for importing
it; only Figure objects are used, never pyplot: no window, no global state.
"""

from __future__ import annotations

import dataclasses

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure, SubFigure

from naive_mp.exchange.paper import Fill, Order

# Sides by colour (blue/orange: told apart by colour-blind readers too), and by
# shape as well; filled orders solid, open ones hollow, canceled ones a cross.
SIDE_COLOURS = {"BUY": "#1f77b4", "SELL": "#ff7f0e"}
SIDE_SHAPES = {"BUY": "^", "SELL": "v"}
KINDS = ("filled", "open", "canceled")
PRICE_COLOUR, EQUITY_COLOUR, DRAWDOWN_COLOUR, TRADERS_COLOUR = "#444444", "#2ca02c", "#d62728", "#9467bd"
COLUMNS = 1200  # pixel columns of a chart's width: the downsampling keeps 4 points per column
RASTER_ABOVE = 2000  # more order markers than this are drawn as one image, not one element each
US_PER_DAY = 86_400_000_000


@dataclasses.dataclass(frozen=True)
class Prices:
    """One symbol's trades in trade-id order: ids, times (microseconds, UTC) and prices (floats, for drawing)."""

    ids: np.ndarray
    times_us: np.ndarray
    prices: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def times_of(self, trade_ids) -> np.ndarray:
        """The time of each trade id (each must be one of the tapes' trades)."""
        at = np.searchsorted(self.ids, np.asarray(trade_ids, dtype=np.int64))
        return self.times_us[np.minimum(at, len(self.ids) - 1)]  # an id past the tapes: their last moment


@dataclasses.dataclass(frozen=True)
class Marker:
    """The orders of one side and kind, where the chart shows them: (time, limit price) each."""

    side: str
    kind: str
    times_us: np.ndarray
    prices: np.ndarray


def prices_of(tapes, symbol: str) -> Prices:
    """The symbol's trades over its tapes, as one timeline."""
    mine = [t for t in tapes if t.symbol == symbol and len(t)]
    if not mine:
        empty = np.zeros(0, dtype=np.int64)
        return Prices(ids=empty, times_us=empty, prices=np.zeros(0))
    ids = np.concatenate([t.ids for t in mine])
    times = np.concatenate([t.times_us for t in mine])
    prices = np.concatenate([t.prices / 10.0 ** t.price_decimals for t in mine])
    order = np.argsort(ids, kind="stable")  # tapes given out of day order still make one timeline
    return Prices(ids=ids[order], times_us=times[order], prices=prices[order])


def downsample(x: np.ndarray, y: np.ndarray, columns: int = COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """At most 4 points per column of equal x width: the first, lowest, highest and last of each (M4).

    A line through them draws the same pixels as the line through every
    point, so no spike is lost: every column keeps its extremes.
    """
    if len(x) <= 4 * columns:
        return x, y
    span = float(x[-1] - x[0]) or 1.0
    column = np.minimum(((x - x[0]) / span * columns).astype(np.int64), columns - 1)
    starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
    ends = np.r_[starts[1:], len(x)] - 1
    by_value = np.lexsort((y, column))  # within each column, lowest first
    lows, highs = by_value[starts], by_value[ends]
    keep = np.unique(np.concatenate([starts, ends, lows, highs]))
    return x[keep], y[keep]


def markers(orders: list[Order], prices: Prices) -> list[Marker]:
    """Every order as one marker: a filled one where it filled, an open or canceled one where it was placed."""
    found = []
    for side in SIDE_COLOURS:
        for kind in KINDS:
            chosen = [o for o in orders if o.side == side and _kind(o) == kind]
            trade_ids = [o.filled_trade_id if kind == "filled" else o.placed_trade_id for o in chosen]
            found.append(Marker(side=side, kind=kind, times_us=prices.times_of(trade_ids),
                                prices=np.array([float(o.price) for o in chosen])))
    return found


def _kind(order: Order) -> str:
    if order.status == "FILLED":
        return "filled"
    return "open" if order.status == "NEW" else "canceled"


def traders_alive(orders: list[Order], end_trade_id: int) -> tuple[np.ndarray, np.ndarray]:
    """How many traders are alive after each trade id where that changes: (trade ids, counts).

    A trader is alive from its first order's placement to the fill of its
    SELL, the last thing it does (strategy.md); one that has not sold by the
    end is alive to the end. A trader finishing and another starting on the
    same trade never count as both at once: the ends come first.
    """
    first: dict[int, int] = {}
    sold: dict[int, int] = {}
    for o in orders:
        first[o.trader_id] = min(first.get(o.trader_id, o.placed_trade_id), o.placed_trade_id)
        if o.side == "SELL" and o.status == "FILLED":
            sold[o.trader_id] = max(sold.get(o.trader_id, 0), o.filled_trade_id)
    if not first:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.array(list(first.values()), dtype=np.int64)
    ends = np.array([sold.get(t, end_trade_id + 1) for t in first], dtype=np.int64)
    at = np.concatenate([ends, starts])
    step = np.concatenate([-np.ones(len(ends), np.int64), np.ones(len(starts), np.int64)])
    order = np.lexsort((step, at))  # by trade id, then -1 before +1
    at, counts = at[order], np.cumsum(step[order])
    last_of_id = np.r_[at[1:] != at[:-1], True]  # one count per trade id: the one after all its changes
    at, counts = at[last_of_id], counts[last_of_id]
    keep = at <= end_trade_id
    return at[keep], counts[keep]


def equity(fills: list[Fill], prices: Prices) -> np.ndarray:
    """Cash plus holdings at market after each trade, as report/symbols.py defines it (floats, for drawing).

    Cash starts at 0; a fill pays or receives its notional and pays its fee,
    on the trade that filled it.
    """
    cash_step, qty_step = np.zeros(len(prices)), np.zeros(len(prices))
    if fills:
        at = np.searchsorted(prices.ids, [f.trade_id for f in fills])
        sign = np.array([1.0 if f.side == "BUY" else -1.0 for f in fills])
        notional = np.array([float(f.price * f.quantity) for f in fills])
        fee = np.array([float(f.fee) for f in fills])
        np.add.at(cash_step, at, -sign * notional - fee)
        np.add.at(qty_step, at, sign * np.array([float(f.quantity) for f in fills]))
    return np.cumsum(cash_step) + np.cumsum(qty_step) * prices.prices


def drawdown(curve: np.ndarray) -> np.ndarray:
    """How far equity is under its highest value so far (0 or negative); its minimum is minus the max drawdown."""
    if len(curve) == 0:
        return curve
    return curve - np.maximum.accumulate(curve)


# -- drawing ------------------------------------------------------------------------------


def _dates(times_us) -> np.ndarray:
    """Matplotlib's date numbers (days since 1970-01-01 UTC) of times in microseconds."""
    return np.asarray(times_us, dtype=np.float64) / US_PER_DAY


def draw(figure: Figure | SubFigure, symbol: str, quote: str, orders: list[Order], fills: list[Fill],
         prices: Prices) -> None:
    """The symbol's four panels, one above the other on a shared time axis."""
    price_ax, equity_ax, drawdown_ax, traders_ax = figure.subplots(
        4, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1.3, 1, 1]})
    figure.suptitle(f"{symbol}: price and orders, equity, drawdown, traders alive", fontsize=12)
    if len(prices) == 0:
        price_ax.text(0.5, 0.5, "no trades", transform=price_ax.transAxes, ha="center")
        return
    _price_panel(price_ax, quote, orders, prices)
    curve = equity(fills, prices)
    _line(equity_ax, prices.times_us, curve, EQUITY_COLOUR, f"equity ({quote})")
    equity_ax.axhline(0, color="#999999", linewidth=0.6)
    _drawdown_panel(drawdown_ax, prices.times_us, drawdown(curve), quote)
    _traders_panel(traders_ax, orders, prices)
    _time_axis(traders_ax)


def _line(ax, times_us, values, colour: str, label: str) -> None:
    x, y = downsample(_dates(times_us), np.asarray(values, dtype=np.float64))
    ax.plot(x, y, color=colour, linewidth=0.8)
    ax.set_ylabel(label)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)


def _price_panel(ax, quote: str, orders: list[Order], prices: Prices) -> None:
    _line(ax, prices.times_us, prices.prices, PRICE_COLOUR, f"price ({quote})")
    found = markers(orders, prices)
    dense = sum(len(m.times_us) for m in found) > RASTER_ABOVE
    for m in found:
        if m.kind == "canceled" and not len(m.times_us):
            continue  # most runs cancel nothing: keep the legend short
        colour = SIDE_COLOURS[m.side]
        style = {"filled": {"c": colour}, "open": {"facecolors": "none", "edgecolors": colour},
                 "canceled": {"c": colour, "marker": "x"}}[m.kind]
        style.setdefault("marker", SIDE_SHAPES[m.side])
        ax.scatter(_dates(m.times_us), m.prices, s=26 if m.kind == "open" else 18, linewidths=0.9,
                   label=f"{m.side} {m.kind} ({len(m.times_us):,})", rasterized=dense, zorder=3, **style)
        if m.kind == "open":  # an open order still rests at its price: show it waiting to the end
            ax.hlines(m.prices, _dates(m.times_us), _dates(prices.times_us[-1]), colors=colour, linewidths=0.7,
                      linestyles=(0, (2, 2)), alpha=0.6, rasterized=dense, zorder=2)
    # Above the panel, not in it: a busy day leaves no free corner, and "best" would scan every marker.
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8, ncol=6, frameon=False, borderaxespad=0.2)


def _drawdown_panel(ax, times_us, values, quote: str) -> None:
    x, y = downsample(_dates(times_us), values)
    ax.fill_between(x, y, 0, color=DRAWDOWN_COLOUR, alpha=0.35, linewidth=0)
    ax.plot(x, y, color=DRAWDOWN_COLOUR, linewidth=0.7)
    ax.set_ylabel(f"drawdown ({quote})")
    ax.grid(True, color="#e5e5e5", linewidth=0.6)


def _traders_panel(ax, orders: list[Order], prices: Prices) -> None:
    at, counts = traders_alive(orders, int(prices.ids[-1]))
    # Start from 0 before the first trade and hold the last count to the end of the tapes.
    times = np.r_[prices.times_us[0], prices.times_of(at), prices.times_us[-1]]
    counts = np.r_[0, counts, counts[-1] if len(counts) else 0]
    x, y = downsample(_dates(times), counts.astype(np.float64))
    ax.step(x, y, where="post", color=TRADERS_COLOUR, linewidth=0.8)
    ax.set_ylabel("traders alive")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator(tz=mdates.UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=mdates.UTC))
    ax.set_xlabel("time (UTC)")
