"""`naive-mp trade start|stop|shutdown SYMBOL`: trading control of one symbol (book chapter 11)."""

import click

from naive_mp.commands.status import run_dir_option
from naive_mp.commands.store_access import tell_leaders, using_store

MEANING = {
    "start": "trading (cached traders resume)",
    "stop": "stopped now (traders' states and orders kept to resume)",
    "shutdown": "shutting down (no rebuys, no replacements; it stops when its last trader finishes)",
}


@click.command()
@click.argument("action", type=click.Choice(["start", "stop", "shutdown"]))
@click.argument("symbol")
@click.option("-q", "--quiet", is_flag=True, help="Say nothing unless it fails.")
@run_dir_option
def trade(action, symbol, quiet, run_dir):
    """Start trading SYMBOL, stop it now (states and orders kept), or shut it down gracefully.

    Kept in the run directory's store: it holds across restarts, and works
    whether or not the system runs.
    """
    symbol = symbol.upper()
    with using_store(run_dir) as store:
        store.set_trading(symbol, action)
    told = tell_leaders(run_dir, "trading")
    where = "now" if told else "from the next `naive-mp start`"
    if not quiet:
        click.echo(f"{symbol}: {MEANING[action]}, {where}")
