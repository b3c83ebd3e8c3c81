"""`naive-mp demo`: the whole multi-process system on a generated tape, offline."""

import logging
import sys
import tempfile
import time
from pathlib import Path

import click

from naive_mp.backtest.synth import synthetic_filters, write_synthetic_tape
from naive_mp.commands.common import resolve_strategy
from naive_mp.commands.start import _speed, run_and_report
from naive_mp.logs import setup_logging
from naive_mp.wire import RunSpec

SYMBOL = "DEMOUSDT"


# A million trades take half a GB to generate; more is a job for a real tape (start --replay).
MAX_TRADES = 1_000_000


@click.command()
@click.option("--trades", default=20_000, show_default=True, type=click.IntRange(1, MAX_TRADES),
              help=f"Trades in the generated tape (1 to {MAX_TRADES:,}).")
@click.option("--seed", default=7, show_default=True, type=click.IntRange(min=0), help="Seed of the generated tape.")
@click.option("--speed", default=None, metavar="N|max",
              help="Replay freely at N times the recorded pace (default: lockstep, which gives "
                   "exactly the orders of `naive-mp backtest` on the same tape).")
@click.option("--keep-tape", type=click.Path(file_okay=False), help="Also save the tape in this folder.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and the summary.")
def demo(trades, seed, speed, keep_tape, quiet):
    """Generate a realistic tape and trade it with the book's chapter 8 settings.

    Runs the supervisor, streamer, paper gateway, a leader and one process per
    trader, like `naive-mp start`, in a temporary run directory; watch it with
    `naive-mp status --run-dir DIR` or ps while it runs.
    """
    setup_logging(logging.WARNING if quiet else logging.INFO)
    settings, filters = resolve_strategy(None, (), [SYMBOL], synthetic_filters())
    with tempfile.TemporaryDirectory(prefix="naive-mp-demo-") as tmp:
        folder = Path(keep_tape) if keep_tape else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tape = write_synthetic_tape(folder, symbol=SYMBOL, trades=trades, seed=seed)
        run_dir = Path(tmp) / "run"
        click.echo(f"generated {trades:,} trades of {SYMBOL} (seed {seed}): {tape}", err=True)
        click.echo(f"running; watch it with: naive-mp status --run-dir {run_dir}", err=True)
        spec = RunSpec(run_dir=str(run_dir), run_id=time.time_ns(), symbols=[SYMBOL], settings=settings,
                       filters=filters, replay=[str(tape)], replay_symbols=[SYMBOL],
                       speed=_speed(speed) if speed else None, lockstep=speed is None, exit_at_end=True,
                       log_level=logging.WARNING if quiet else logging.INFO, replay_trades=[trades],
                       progress=not quiet and sys.stderr.isatty())
        run_and_report(spec)
