"""`naive-mp demo`: the whole strategy on a generated tape, offline."""

import logging
import tempfile
from pathlib import Path

import click

from naive_mp.backtest.run import run_backtest
from naive_mp.backtest.synth import synthetic_filters, write_synthetic_tape
from naive_mp.commands.backtest import summary_table
from naive_mp.commands.common import resolve_strategy
from naive_mp.logs import setup_logging

SYMBOL = "DEMOUSDT"


@click.command()
@click.option("--trades", default=20_000, show_default=True, help="Trades in the generated tape.")
@click.option("--seed", default=7, show_default=True, help="Seed of the generated tape.")
@click.option("--keep-tape", type=click.Path(dir_okay=False), help="Also save the tape here.")
@click.option("-q", "--quiet", is_flag=True, help="Only the summary, no trader log lines.")
def demo(trades, seed, keep_tape, quiet):
    """Generate a realistic tape and trade it with the book's chapter 8 settings."""
    setup_logging(logging.WARNING if quiet else logging.INFO)
    flags = synthetic_filters()
    settings, filters = resolve_strategy(None, (), [SYMBOL], flags)
    with tempfile.TemporaryDirectory(prefix="naive-mp-demo-") as tmp:
        tape = Path(keep_tape) if keep_tape else Path(tmp) / f"{SYMBOL}-trades-demo.csv"
        write_synthetic_tape(tape, symbol=SYMBOL, trades=trades, seed=seed)
        click.echo(f"generated {trades:,} trades of {SYMBOL} (seed {seed}) in {tape}", err=True)
        result = run_backtest([str(tape)], [SYMBOL], settings, filters)
    click.echo(summary_table(result))
