"""Run a backtest over tape files and collect its result (used by the CLI and demo)."""

import time
from decimal import Decimal

import msgspec

from naive_mp.backtest.engine import Backtest
from naive_mp.backtest.report import Summary, combine, summarize, summary_dict
from naive_mp.data.tapes import read_tape
from naive_mp.exchange.paper import Fill, Order
from naive_mp.core.settings import Filters, Settings
from naive_mp.report.symbols import PriceTrack, SymbolReport, report, report_dict


class Result(msgspec.Struct, kw_only=True):
    """The run-wide summary, one per symbol (and its readable report), every order and fill, and the tapes."""

    summary: Summary
    per_symbol: list[Summary]
    orders: list[Order]
    elapsed_s: float
    reports: list[SymbolReport] = []
    fills: list[Fill] = []
    tapes: list = []  # the Tapes traded, for charts of their prices


def run_backtest(paths: list[str], symbols: list[str], settings: dict[str, Settings],
                 filters: dict[str, Filters], *, skip_quiet: bool = True,
                 quote_balance: Decimal | None = None, progress=None) -> Result:
    """Read and trade each tape in turn (paths[i] is traded as symbols[i]); `progress(1)` after each read."""
    started = time.perf_counter()
    tapes = []
    for path, symbol in zip(paths, symbols):
        tapes.append(read_tape(path, symbol))
        if progress is not None:
            progress(1)
    return trade_tapes(tapes, settings, filters, skip_quiet=skip_quiet, quote_balance=quote_balance,
                       started=started)


def trade_tapes(tapes: list, settings: dict[str, Settings], filters: dict[str, Filters], *,
                skip_quiet: bool = True, quote_balance: Decimal | None = None, started: float | None = None) -> Result:
    """Trade tapes already read, in turn: what `backtest` and every row of a sweep compute."""
    started = time.perf_counter() if started is None else started
    engine = Backtest(settings, filters, skip_quiet=skip_quiet, quote_balance=quote_balance)
    tracks: dict[str, PriceTrack] = {}
    for tape in tapes:
        engine.run_tape(tape)
        tracks.setdefault(tape.symbol, PriceTrack(ids=[], prices=[], decimals=[])).add(tape)
    orders = sorted(engine.exchange.orders.values(), key=lambda o: o.order_id)
    per_symbol = [
        summarize(symbol, [o for o in orders if o.symbol == symbol], engine.exchange.fee,
                  run.events, run.max_traders, run.last_price)
        for symbol, run in engine.symbols.items()
    ]
    fills = {s.symbol: [f for f in engine.exchange.fills if engine.exchange.orders[f.order_id].symbol == s.symbol]
             for s in per_symbol}
    reports = [report(s, [o for o in orders if o.symbol == s.symbol], fills[s.symbol], engine.exchange.fee,
                      settings[s.symbol].budget, tracks[s.symbol]) for s in per_symbol]
    return Result(summary=combine(per_symbol), per_symbol=per_symbol, orders=orders,
                  elapsed_s=time.perf_counter() - started, reports=reports, fills=engine.exchange.fills,
                  tapes=tapes)


def result_data(result: Result) -> dict:
    """backtest's --json: cli.md's keys for the run, a symbol's report keys beside them (per_symbol for several)."""
    data = summary_dict(result.summary)
    if len(result.per_symbol) == 1:
        data = report_dict(result.per_symbol[0], result.reports[0])
    data["elapsed_s"] = round(result.elapsed_s, 4)
    if len(result.per_symbol) > 1:
        data["per_symbol"] = [report_dict(s, r) for s, r in zip(result.per_symbol, result.reports)]
    return data
