"""A settings sweep: the backtest of every combination of a grid, on all cores, ranked.

The tapes are read once, in the parent, before the workers fork: each worker
sees them through copy-on-write pages and only runs the engine. Every row is
exactly what `naive-mp backtest` prints with those settings (the same engine,
the same summary), which the tests check.
"""

import itertools
import multiprocessing
import os
from decimal import Decimal

import msgspec

from naive_mp.backtest.run import result_data, trade_tapes
from naive_mp.core.money import EXACT, fmt, parse_decimal
from naive_mp.core.settings import SETTING_KEYS, Filters, Settings, SettingError, setting_value

MAX_COMBINATIONS = 1_000_000
RANGE_MAX_VALUES = 100_000

# What the workers need, set before they fork (never pickled: a day's tape is megabytes).
_JOB: dict = {}


class GridError(ValueError):
    """A --grid that cannot be swept; the message names it."""


def parse_grid(specs: list[str]) -> dict[str, list]:
    """`KEY=V1,V2,...` or `KEY=START:STOP:STEP` (STOP included when on the grid) -> key: values."""
    grid: dict[str, list] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            raise GridError(f"{spec!r}: expected KEY=V1,V2,... or KEY=START:STOP:STEP")
        if key not in SETTING_KEYS:
            raise GridError(f"{key}: unknown setting (known: {', '.join(SETTING_KEYS)})")
        if key in grid:
            raise GridError(f"{key}: given twice")
        try:
            values = _range(key, text) if ":" in text else [setting_value(key, v) for v in text.split(",")]
        except SettingError as exc:
            raise GridError(str(exc)) from None
        grid[key] = list(dict.fromkeys(values))
    return grid


def _range(key: str, text: str) -> list:
    parts = text.split(":")
    if len(parts) != 3:
        raise GridError(f"{key}={text}: a range is START:STOP:STEP")
    start, stop, step = (setting_value(key, p) for p in parts)
    if step <= 0 or stop < start:
        raise GridError(f"{key}={text}: needs STEP > 0 and STOP >= START")
    count = int(EXACT.divide_int(EXACT.subtract(stop, start), step)) + 1
    if count > RANGE_MAX_VALUES:
        raise GridError(f"{key}={text}: {count:,} values, more than {RANGE_MAX_VALUES:,}")
    add, mul = (int.__add__, int.__mul__) if key == "chunks" else (EXACT.add, EXACT.multiply)
    return [add(start, mul(step, i)) for i in range(count)]


def combinations(base: dict[str, Settings], grid: dict[str, list]) -> list[dict[str, object]]:
    """Every combination of the grid's values (key -> value), each checked against the settings' rules."""
    keys = list(grid)
    total = 1
    for values in grid.values():
        total *= len(values)
    if total > MAX_COMBINATIONS:
        raise GridError(f"{total:,} combinations, more than {MAX_COMBINATIONS:,}: narrow the grid")
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    for combo in combos:
        for settings in base.values():
            try:
                msgspec.structs.replace(settings, **combo).__post_init__()
            except SettingError as exc:
                raise GridError(f"{_describe(combo)}: {exc}") from None
    return combos


def _describe(combo: dict) -> str:
    return " ".join(f"{k}={fmt(v) if isinstance(v, Decimal) else v}" for k, v in combo.items())


def run_one(combo: dict) -> dict:
    """One backtest with `combo` over the tapes read beforehand: backtest's --json summary, and the combo."""
    tapes, base, filters = _JOB["tapes"], _JOB["settings"], _JOB["filters"]
    settings = {symbol: msgspec.structs.replace(s, **combo) for symbol, s in base.items()}
    row = result_data(trade_tapes(tapes, settings, filters))
    row.pop("elapsed_s")
    row["settings"] = {k: fmt(v) if isinstance(v, Decimal) else v for k, v in combo.items()}
    return row


def sweep(tapes: list, settings: dict[str, Settings], filters: dict[str, Filters], combos: list[dict],
          workers: int | None = None, progress=None) -> list[dict]:
    """The rows of every combination, in the order of `combos`; `progress(n)` after each n done."""
    _JOB.update(tapes=tapes, settings=settings, filters=filters)
    workers = max(1, min(workers or os.cpu_count() or 1, len(combos)))
    if workers == 1:
        rows = []
        for combo in combos:
            rows.append(run_one(combo))
            progress and progress(1)
        return rows
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        rows = []
        for row in pool.imap(run_one, combos, chunksize=max(1, len(combos) // (workers * 20))):
            rows.append(row)
            progress and progress(1)
        return rows


def ranked(rows: list[dict], by: str) -> list[dict]:
    """Best first: the largest `by` (a number or a decimal string), ties in grid order."""
    def value(row):
        v = row.get(by)
        return Decimal(v) if isinstance(v, str) else Decimal(v or 0)
    return sorted(rows, key=value, reverse=True)


def best_toml(symbols: list[str], settings: dict[str, Settings], row: dict) -> str:
    """The best row's settings as [symbols.SYMBOL] tables to paste into the config file."""
    lines = []
    for symbol in symbols:
        values = msgspec.structs.asdict(settings[symbol]) | {k: parse_value(k, v) for k, v in row["settings"].items()}
        lines.append(f"[symbols.{symbol}]")
        for key in SETTING_KEYS:
            value = values[key]
            lines.append(f'{key} = {value}' if key == "chunks" else f'{key} = "{fmt(value)}"')
        lines.append("")
    return "\n".join(lines)


def parse_value(key: str, text):
    return int(text) if key == "chunks" else parse_decimal(str(text), key)
