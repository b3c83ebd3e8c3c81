"""`naive-mp orders`: every order the run directory's store has seen."""

import json

import click

from naive_mp.backtest.report import ORDER_COLUMNS, orders_csv
from naive_mp.commands.status import run_dir_option
from naive_mp.commands.store_access import using_store
from naive_mp.core.money import fmt


@click.command()
@click.argument("symbol", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects instead of CSV.")
@click.option("-q", "--quiet", is_flag=True, help="The CSV rows alone, without the header line.")
@run_dir_option
def orders(symbol, as_json, quiet, run_dir):
    """Every order of the run (of SYMBOL), by order id, with the columns of --orders-out."""
    with using_store(run_dir, readonly=True) as store:
        found = store.orders(symbol.upper() if symbol else None)
    if as_json:
        rows = [{key: _plain(getattr(o, key)) for key in ORDER_COLUMNS} for o in found]
        click.echo(json.dumps(rows))
    else:
        text = orders_csv(found)
        click.echo(text.split("\n", 1)[1] if quiet else text, nl=False)


def _plain(value):
    return value if isinstance(value, (int, str)) or value is None else fmt(value)
