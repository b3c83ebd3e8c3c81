"""`naive-mp sweep TAPE... --grid KEY=V1,V2,...`: backtest every combination of settings, ranked."""

import csv
import io
import json
import logging
import sys
import time

import click

from naive_mp.data.tapes import TapeError, read_tape, symbol_from_path
from naive_mp.commands.common import progress_bar, resolve_strategy, strategy_options
from naive_mp.commands.output import check_output, write_output
from naive_mp.logs import setup_logging
from naive_mp.report.sweep import GridError, best_toml, combinations, parse_grid, ranked, sweep

COLUMNS = ("realized_pnl", "cycles", "orders_placed", "orders_open", "fees", "position_qty", "position_cost",
           "max_traders")


@click.command()
@click.argument("tapes", nargs=-1, required=True, metavar="TAPE...")
@click.option("--grid", "grids", multiple=True, required=True, metavar="KEY=V1,V2,...|KEY=START:STOP:STEP",
              help="Values of one setting to try (repeatable; every combination is backtested).")
@click.option("--by", default="realized_pnl", show_default=True, type=click.Choice(COLUMNS),
              help="Rank by this column, largest first.")
@click.option("--top", default=20, show_default=True, help="Rows of the table to print (0: all).")
@click.option("--workers", type=click.IntRange(1, 256), help="Processes to use (default: every core).")
@click.option("--symbol", help="Symbol of the tapes (default: from each file name).")
@strategy_options
@click.option("--json", "as_json", is_flag=True, help="Print every row as one JSON list instead of the table.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False),
              help="Also write every row to this CSV file ('-': stdout).")
def sweep_command(tapes, grids, by, top, workers, symbol, config_path, set_pairs, verbose, quiet, as_json, csv_out,
                  **filter_values):
    """Backtest every combination of the --grid values over TAPE..., read once, on all cores.

    Each row equals `naive-mp backtest` with those settings. Prints the ranked
    table and the best settings as a [symbols.SYMBOL] table for the config file.
    """
    setup_logging(logging.ERROR if quiet else logging.WARNING)
    check_output(csv_out, "--csv")
    try:
        symbols = [symbol.upper() if symbol else symbol_from_path(path) for path in tapes]
        grid = parse_grid(list(grids))
    except (TapeError, GridError) as exc:
        raise click.UsageError(str(exc)) from None
    settings, filters = resolve_strategy(config_path, set_pairs, dict.fromkeys(symbols), filter_values)
    try:
        combos = combinations(settings, grid)
        read = [read_tape(path, sym) for path, sym in zip(tapes, symbols)]
    except GridError as exc:
        raise click.UsageError(str(exc)) from None
    except TapeError as exc:
        raise click.ClickException(str(exc)) from None
    began = time.perf_counter()
    rows = _run(read, settings, filters, combos, workers, show=not (as_json or quiet) and sys.stderr.isatty())
    took = time.perf_counter() - began
    best = ranked(rows, by)
    if csv_out:
        _write_csv(csv_out, best, list(grid))
    if as_json:
        click.echo(json.dumps(best))
        return
    click.echo(f"{len(rows):,} backtests of {len(read)} tape(s) in {took:.1f} s, ranked by {by}:")
    click.echo(_table(best[:top] if top else best, list(grid)))
    click.echo("\nbest settings, for the config file:\n")
    click.echo(best_toml(list(dict.fromkeys(symbols)), settings, best[0]))


def _run(tapes, settings, filters, combos, workers, show: bool) -> list[dict]:
    if not show:
        return sweep(tapes, settings, filters, combos, workers)
    with progress_bar(len(combos), "backtests", "backtests", show_pos=True) as bar:
        return sweep(tapes, settings, filters, combos, workers, progress=bar.update)


def _table(rows: list[dict], keys: list[str]) -> str:
    header = ["#", *keys, *COLUMNS]
    body = [[str(i), *(str(r["settings"][k]) for k in keys), *(str(r[c]) for c in COLUMNS)]
            for i, r in enumerate(rows, 1)]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in [header, *body])


def _write_csv(path: str, rows: list[dict], keys: list[str]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", *keys, *COLUMNS, "events", "orders_filled", "last_price"])
    for i, r in enumerate(rows, 1):
        writer.writerow([i, *(r["settings"][k] for k in keys), *(r[c] for c in COLUMNS), r["events"],
                         r["orders_filled"], r["last_price"]])
    write_output(path, out.getvalue(), "--csv")
