"""`naive-mp download SYMBOL DAY...`: daily trades tapes from Binance's public data archive."""

import contextlib
import sys
from pathlib import Path

import click

from naive_mp.commands.common import progress_bar

from naive_mp.data.days import DayError, parse_days
from naive_mp.data.download import (DEFAULT_BASE_URL, TIMEOUT_S, Archive, Outcome, Status, check_symbol,
                                    no_progress)

_WORDS = {Status.MISSING: "failed"}  # a missing day reads as a failure; the detail says why


@click.command()
@click.argument("symbol")
@click.argument("days", nargs=-1, required=True, metavar="DAY...")
@click.option("--dir", "folder", default=".", show_default=True,
              type=click.Path(file_okay=False, writable=True),
              help="Folder for the tapes (the current directory by default; created if needed).")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True,
              help="The archive, or a mirror with its layout.")
@click.option("--timeout", default=TIMEOUT_S, show_default=True, type=click.FloatRange(min=0, min_open=True),
              metavar="S", help="Give up on a connection silent for S seconds (a few tries are made).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, and print only the days that failed.")
def download(symbol, days, folder, base_url, timeout, quiet):
    """Download SYMBOL's trades of each DAY from Binance's public data archive.

    DAY is YYYY-MM-DD, or a range FIRST..LAST (both included), e.g.
    `naive-mp download XRPUSDT 2019-06-01..2019-06-07`. Each day's
    SYMBOL-trades-DAY.zip is checked against the archive's SHA-256 .CHECKSUM
    (kept beside it) and only then takes its name; the files are tapes for
    `naive-mp backtest` and `start --replay`.

    A day already there and intact is not downloaded again; a broken one is
    fetched again; an interrupted transfer (a NAME.zip.part) is resumed. A
    progress bar shows on a terminal. Exit status 1 if any day failed (after
    trying all of them), 2 on bad arguments.
    """
    try:
        symbol = check_symbol(symbol)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="SYMBOL") from None
    try:
        wanted = parse_days(days)
    except DayError as exc:
        raise click.BadParameter(str(exc), param_hint="DAY") from None
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    show_bar = not quiet and sys.stderr.isatty()
    archive = Archive(base_url=base_url, timeout=timeout, progress=_bar if show_bar else no_progress)
    outcomes = [_report(archive.download(symbol, day, target), quiet) for day in wanted]
    failed = [o for o in outcomes if not o.ok]
    if failed:
        names = ", ".join(o.day.isoformat() for o in failed)
        raise click.ClickException(f"{len(failed)} of {len(outcomes)} days failed: {names}")


def _report(outcome: Outcome, quiet: bool) -> Outcome:
    """One line per day: what was done and the tape's path (stderr and the reason if it failed)."""
    word = _WORDS.get(outcome.status, outcome.status.value)
    head = f"{outcome.symbol} {outcome.day}  {word:<16}"
    if not outcome.ok:
        click.echo(f"{head} {outcome.detail}", err=True)
    elif not quiet:
        notes = ", ".join(filter(None, [_size(outcome.size), outcome.detail]))
        click.echo(f"{head} {outcome.path}  ({notes})")
    return outcome


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


@contextlib.contextmanager
def _bar(label: str, total: int, done: int):
    """click's progress bar on stderr, in bytes; none when the size is unknown."""
    if not total:
        yield lambda n: None
        return
    with progress_bar(total, label, "MB", scale=1e6, width=30) as bar:
        bar.update(done)
        yield bar.update
