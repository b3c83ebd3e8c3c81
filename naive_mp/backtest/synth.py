"""A seeded synthetic trade tape, in the Binance public-data layout, for the offline demo.

The price is a random walk in whole ticks whose volatility, trend, spread
and trade rate switch between regimes (calm, normal, volatile stretches of
random length, some trending), so volatility clusters the way it does in
real tapes.  Trades alternate between the bid and the ask (the bounce seen in
real tapes), sizes are heavy-tailed (lognormal) whole steps, and several
trades often share a millisecond.  Floats only shape the random walk; every
price, quantity and quote quantity is written from exact integers.
"""

from __future__ import annotations

import datetime
import math
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

__all__ = ["synthetic_filters", "write_synthetic_tape"]

_TICK, _STEP, _MIN_NOTIONAL = "0.00001", "0.1", "5"
_E8 = 10**8  # the files' 8 decimal places
_FIRST_ID = 100_000_000
# (share of stretches, ticks of noise per trade, spread in ticks, mean ms between trades)
_REGIMES = np.array([
    (0.35, 0.35, 1, 2500.0),  # calm
    (0.45, 0.90, 1, 900.0),  # normal
    (0.20, 2.20, 2, 250.0),  # volatile: bigger moves, wider spread, busier
])
_MEAN_STRETCH = 600  # trades per regime stretch, on average (geometric)
_TREND_SHARE = 0.3  # share of stretches that trend
_SAME_MS = 0.25  # chance a trade shares its millisecond with the previous one
_MEDIAN_NOTIONAL = 60  # quote units of the median trade
_SWING = 800  # trades for a swing away from the anchor to fade by 1/e
_SWING_GAIN = 2.0  # swing shock per unit of noise: swings of ~0.07% (sd) in normal times
_ANCHOR_SHARE = 0.15  # the anchor's own noise per unit of noise


def synthetic_filters() -> dict:
    """The exchange filters the synthetic tape is generated on (strings, Filters' keys)."""
    return {"tick_size": _TICK, "step_size": _STEP, "min_qty": _STEP, "min_notional": _MIN_NOTIONAL}


def write_synthetic_tape(path, *, symbol="DEMOUSDT", trades=20_000, seed=7, start_price="0.50000",
                         tick=_TICK, step=_STEP, start_time_ms=1_700_000_000_000) -> Path:
    """Write a deterministic (per seed) synthetic tape; return the file written.

    ``path`` is the csv to write, or a directory to write
    ``SYMBOL-trades-YYYY-MM-DD.csv`` into (so the symbol can be read back
    from the name).  Prices are multiples of ``tick`` and never <= 0,
    quantities multiples of ``step``, ``quoteQty = price * qty`` exactly, ids
    contiguous, times non-decreasing milliseconds from ``start_time_ms``.
    """
    tick_e8, step_e8 = _e8("tick", tick), _e8("step", step)
    start_e8 = _e8("start_price", start_price)
    if trades < 1:
        raise ValueError(f"trades must be at least 1, got {trades}")
    if start_e8 % tick_e8:
        raise ValueError(f"start_price {start_price} is not a multiple of tick {tick}")
    if tick_e8 * step_e8 % _E8:
        raise ValueError(f"tick {tick} and step {step} have more than 8 decimals between them, "
                         "so quoteQty would not be exact")
    rng = np.random.default_rng(seed)
    noise, drift, spread, gap = _regimes(rng, trades)
    bids = _bids(rng, start_e8 // tick_e8, noise, drift)
    buyer_is_maker = rng.random(trades) < 0.5 + 0.2 * np.sign(-drift)  # trends lean one way
    buyer_is_maker[0] = True  # so the first trade prints at start_price
    prices = bids + np.where(buyer_is_maker, 0, spread)  # a maker buyer's trade prints at the bid
    sizes = _sizes(rng, trades, _MEDIAN_NOTIONAL * _E8 * _E8 / (start_e8 * step_e8))
    times = start_time_ms + np.cumsum(_gaps(rng, gap))
    path = Path(path)
    if path.is_dir():
        day = datetime.datetime.fromtimestamp(start_time_ms / 1000, datetime.timezone.utc).date()
        path = path / f"{symbol}-trades-{day.isoformat()}.csv"
    rows = zip((prices * tick_e8).tolist(), (sizes * step_e8).tolist(), times.tolist(),
               buyer_is_maker.tolist())
    lines = [_line(_FIRST_ID + i, *row) for i, row in enumerate(rows)]
    path.write_bytes("".join(lines).encode("ascii"))
    return path


def _e8(name: str, text) -> int:
    """A positive decimal with at most 8 places, as an integer count of 1e-8."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a decimal number") from None
    scaled = value * _E8
    if not value.is_finite() or value <= 0 or scaled != scaled.to_integral_value():
        raise ValueError(f"{name} must be positive with at most 8 decimals, got {text}")
    return int(scaled)


def _regimes(rng, trades):
    """Per trade: noise (ticks), drift (ticks per trade), spread (ticks), mean gap (ms)."""
    noise, drift = np.empty(trades), np.zeros(trades)
    spread, gap = np.empty(trades, np.int64), np.empty(trades)
    at = 0
    while at < trades:
        stretch = slice(at, at + int(rng.geometric(1 / _MEAN_STRETCH)))
        regime = _REGIMES[rng.choice(len(_REGIMES), p=_REGIMES[:, 0])]
        _, noise[stretch], spread[stretch], gap[stretch] = regime
        if rng.random() < _TREND_SHARE:
            # A trend worth a few tenths of a percent over a stretch at 0.5.
            drift[stretch] = rng.choice((-1, 1)) * rng.uniform(0.08, 0.3) * noise[stretch][0]
        at = stretch.stop
    return noise, drift, spread, gap


def _bids(rng, start, noise, drift):
    """The bid, in ticks: a drifting anchor plus swings that revert to it, floored above zero.

    The swings (an AR(1) over ~_SWING trades) are what a grid strategy lives
    on; the anchor's random walk and trends are what strand its buys.
    """
    shocks = noise * rng.standard_t(4, len(noise)) / math.sqrt(2)  # t(4) has variance 2
    anchor = np.cumsum(drift + _ANCHOR_SHARE * shocks)
    keep, swing, swings = 1 - 1 / _SWING, 0.0, []
    for shock in (_SWING_GAIN * shocks).tolist():
        swing = keep * swing + shock
        swings.append(swing)
    walk = np.rint(start + anchor + np.array(swings)).astype(np.int64)
    walk[0] = start
    floor = max(1, start // 10)
    return floor + np.abs(walk - floor)  # never below the floor, so the price stays > 0


def _sizes(rng, trades, median_steps):
    """Trade sizes in whole steps: lognormal, at least one step, capped far out in the tail."""
    steps = np.rint(rng.lognormal(math.log(max(median_steps, 1.0)), 1.3, trades))
    return np.clip(steps, 1, 1000 * max(median_steps, 1.0)).astype(np.int64)


def _gaps(rng, mean_gap):
    """Milliseconds since the previous trade: often 0 (one order sweeping), else exponential."""
    gaps = np.ceil(rng.exponential(mean_gap)).astype(np.int64)
    gaps[rng.random(len(gaps)) < _SAME_MS] = 0
    gaps[0] = 0
    return gaps


def _line(trade_id, price_e8, qty_e8, time_ms, buyer_is_maker):
    """One csv line, exactly as Binance writes it."""
    quote_e8, rest = divmod(price_e8 * qty_e8, _E8)
    assert rest == 0, "checked up front: tick and step decimals fit 8 places"
    maker = "True" if buyer_is_maker else "False"
    return f"{trade_id},{_fmt(price_e8)},{_fmt(qty_e8)},{_fmt(quote_e8)},{time_ms},{maker},True\n"


def _fmt(e8: int) -> str:
    """An integer count of 1e-8 as a decimal with 8 places."""
    return f"{e8 // _E8}.{e8 % _E8:08d}"
