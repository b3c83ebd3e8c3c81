"""`naive-mp report FILE.html` (a run directory's orders) and backtest's `--report`: charts in one file.

Both write the same page (naive_mp.report.page): the summary table, then per
symbol the price with every order, equity and drawdown, and traders alive;
plus a PNG of the charts, at --png or beside the HTML. The run directory's
version takes its orders and fills from the store, its prices from the
run's tapes up to the last trade the run handled.
"""

import dataclasses
from pathlib import Path

import click

from naive_mp.commands.output import STDOUT, check_output, write_output
from naive_mp.commands.status import run_dir_option
from naive_mp.commands.store_access import using_store


def report_options(command):
    """--png FILE.png: the charts as one image (default: beside the HTML, its name with .png)."""
    text = "Write the charts as one PNG image here (default: the HTML's name with .png)."
    return click.option("--png", "png_path", type=click.Path(dir_okay=False), help=text)(command)


def outputs(html_path: str | None, png_path: str | None) -> tuple[str | None, str | None]:
    """The files to write, checked before any work: the HTML, and the PNG beside it unless named."""
    check_output(html_path, "--report")
    check_output(png_path, "--png")
    if html_path and html_path != STDOUT and not png_path:
        png_path = str(Path(html_path).with_suffix(".png"))
        check_output(png_path, "--png")
    return html_path, png_path


def write(html_path: str | None, png_path: str | None, title: str, subtitle: str, parts: list) -> None:
    """Write the page and/or the PNG, each as commands/output.py writes a command's files."""
    from naive_mp.report import page
    if html_path:
        write_output(html_path, page.page(title, subtitle, parts), "--report")
    if png_path:
        write_output(png_path, page.png(parts), "--png")


def write_backtest_report(result, settings: dict, tape_paths: list[str], html_path: str | None,
                          png_path: str | None) -> None:
    """backtest's --report and --png, from its Result."""
    from naive_mp.report import page
    parts = page.sections(result.per_symbol, result.reports, result.orders, result.fills, result.tapes, settings)
    names = ", ".join(Path(p).name for p in tape_paths)
    write(html_path, png_path, f"naive-mp backtest: {', '.join(s.symbol for s in result.per_symbol)}",
          f"tapes: {names}", parts)


@click.command("report")
@click.argument("html_path", metavar="FILE.html", type=click.Path(dir_okay=False))
@report_options
@run_dir_option
def report_command(html_path, png_path, run_dir):
    """Charts of the run's orders, prices from its tapes, in one self-contained FILE.html (and a PNG)."""
    html_path, png_path = outputs(html_path, png_path)
    with using_store(run_dir, readonly=True) as store:
        run, book, settings = store.run(), store.book(), store.settings()
    if run is None:
        raise click.ClickException(f"no run recorded in {run_dir}: start one with `naive-mp start`")
    if not run.command.tapes:
        raise click.ClickException(f"{run.describe()}: no tapes to take prices from; "
                                   "report charts replays (`naive-mp start --replay TAPE...`)")
    write(html_path, png_path, *run_sections(run, book, settings, run_dir))


def run_sections(run, book, settings: dict, run_dir: Path) -> tuple[str, str, list]:
    """The page's title, subtitle and sections for a stored run, as far as it went."""
    from naive_mp.data.tapes import TapeError, read_tape, symbol_from_path
    from naive_mp.report import page
    try:
        tapes = [read_tape(path, symbol_from_path(path)) for path in run.command.tapes]
    except (OSError, TapeError) as exc:
        raise click.ClickException(f"the run's tapes give its prices: {exc}") from None
    # Only the trades the run handled: a stopped or killed replay ends where it stood.
    feeds = book.feeds
    handled = [_upto(t, feeds[t.symbol].last_trade_id if t.symbol in feeds else -1) for t in tapes]
    results = [_symbol_result(symbol, book, settings[symbol][0], handled) for symbol in run.command.symbols]
    parts = page.sections([r[0] for r in results], [r[1] for r in results], book.orders, book.fills, handled,
                          {s: pair[0] for s, pair in settings.items()})
    return f"naive-mp run: {', '.join(run.command.symbols)}", f"{run.describe()}, in {run_dir}", parts


def _symbol_result(symbol: str, book, settings, tapes: list) -> tuple:
    """(Summary, SymbolReport) of one symbol from the store's book, as backtest's table shows them."""
    from naive_mp.backtest.report import summarize
    from naive_mp.report.charts import traders_alive
    from naive_mp.report.symbols import PriceTrack, report
    feed = book.feeds.get(symbol)
    orders = [o for o in book.orders if o.symbol == symbol]
    ids = {o.order_id for o in orders}
    fills = [f for f in book.fills if f.order_id in ids]
    track = PriceTrack(ids=[], prices=[], decimals=[])
    for tape in tapes:
        if tape.symbol == symbol:
            track.add(tape)
    last_id = max((int(t.ids[-1]) for t in tapes if t.symbol == symbol and len(t)), default=0)
    most_alive = int(traders_alive(orders, last_id)[1].max(initial=0))
    summary = summarize(symbol, orders, settings.fee, feed.events if feed else 0, most_alive,
                        feed.last_price if feed else None)
    return summary, report(summary, orders, fills, settings.fee, settings.budget, track)


def _upto(tape, last_trade_id: int):
    """The tape's trades up to `last_trade_id` (ids are in order)."""
    import numpy as np
    n = int(np.searchsorted(tape.ids, last_trade_id, side="right"))
    if n == len(tape):
        return tape
    return dataclasses.replace(tape, ids=tape.ids[:n], prices=tape.prices[:n], times_us=tape.times_us[:n])
