"""`naive-mp backtest TAPE...`: the strategy over tapes, in one process."""

import json
import logging
import sys

import click

from naive_mp.backtest.report import orders_csv
from naive_mp.backtest.run import Result, result_data, run_backtest
from naive_mp.data.tapes import TapeError, symbol_from_path
from naive_mp.commands.common import progress_bar, resolve_strategy, strategy_options
from naive_mp.commands.output import check_output, write_output
from naive_mp.commands.report import outputs, report_options, write_backtest_report
from naive_mp.report.symbols import table
from naive_mp.logs import setup_logging


@click.command()
@click.argument("tapes", nargs=-1, required=True, metavar="TAPE...")
@click.option("--symbol", help="Symbol of the tapes (default: from each file name).")
@strategy_options
@click.option("--orders-out", type=click.Path(dir_okay=False),
              help="Write every order to this CSV file ('-': stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write charts of the run (prices and orders, equity, drawdown, traders) to this HTML file.")
@report_options
def backtest(tapes, symbol, config_path, set_pairs, verbose, quiet, orders_out, as_json, report_path, png_path,
             **filter_values):
    """Trade TAPE... (Binance trades .csv or .zip) with the paper exchange, in order."""
    setup_logging(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)
    check_output(orders_out)
    report_path, png_path = outputs(report_path, png_path)
    try:
        symbols = [symbol.upper() if symbol else symbol_from_path(path) for path in tapes]
    except TapeError as exc:
        raise click.UsageError(str(exc)) from None
    settings, filters = resolve_strategy(config_path, set_pairs, dict.fromkeys(symbols), filter_values)
    try:
        if len(tapes) > 1 and not (as_json or quiet) and sys.stderr.isatty():
            with progress_bar(len(tapes), "reading tapes", "tapes", show_pos=True) as bar:
                result = run_backtest(list(tapes), symbols, settings, filters, progress=bar.update)
        else:
            result = run_backtest(list(tapes), symbols, settings, filters)
    except TapeError as exc:
        raise click.ClickException(str(exc)) from None
    if orders_out:
        write_output(orders_out, orders_csv(result.orders))
    if report_path or png_path:
        write_backtest_report(result, settings, list(tapes), report_path, png_path)
    click.echo(summary_json(result) if as_json else table(result.per_symbol, result.reports, result.elapsed_s))


def summary_json(result: Result) -> str:
    """One JSON object: the run-wide summary, plus per-symbol ones for several symbols."""
    return json.dumps(summary_data(result))


def summary_data(result: Result) -> dict:
    return result_data(result)
