"""Run a backtest over tape files and collect its result (used by the CLI and demo)."""

import time
from decimal import Decimal

import msgspec

from naive_mp.backtest.engine import Backtest
from naive_mp.backtest.report import Summary, combine, summarize
from naive_mp.backtest.tape import read_tape
from naive_mp.core.paper import Order
from naive_mp.core.settings import Filters, Settings


class Result(msgspec.Struct, kw_only=True):
    """The run-wide summary, one per symbol, and every order."""

    summary: Summary
    per_symbol: list[Summary]
    orders: list[Order]
    elapsed_s: float


def run_backtest(paths: list[str], symbols: list[str], settings: dict[str, Settings],
                 filters: dict[str, Filters], *, skip_quiet: bool = True,
                 quote_balance: Decimal | None = None) -> Result:
    """Read and trade each tape in turn (paths[i] is traded as symbols[i])."""
    started = time.perf_counter()
    engine = Backtest(settings, filters, skip_quiet=skip_quiet, quote_balance=quote_balance)
    for path, symbol in zip(paths, symbols):
        engine.run_tape(read_tape(path, symbol))
    orders = sorted(engine.exchange.orders.values(), key=lambda o: o.order_id)
    per_symbol = [
        summarize(symbol, [o for o in orders if o.symbol == symbol], engine.exchange.fee,
                  run.events, run.max_traders, run.last_price)
        for symbol, run in engine.symbols.items()
    ]
    return Result(summary=combine(per_symbol), per_symbol=per_symbol, orders=orders,
                  elapsed_s=time.perf_counter() - started)
