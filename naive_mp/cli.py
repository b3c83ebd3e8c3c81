"""The `naive-mp` command line (shared/docs/cli.md is its contract)."""

import click

from naive_mp.commands.backtest import backtest
from naive_mp.commands.demo import demo
from naive_mp.commands.download import download
from naive_mp.commands.orders import orders
from naive_mp.commands.record import record
from naive_mp.commands.report import report_command
from naive_mp.commands.settings import reload, settings
from naive_mp.commands.start import start
from naive_mp.commands.status import status
from naive_mp.commands.stop import stop
from naive_mp.commands.sweep import sweep_command
from naive_mp.commands.trade import trade


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="naive-mp")
def main():
    """naive-mp: the naive trading strategy, one OS process per trader."""


main.add_command(backtest)
main.add_command(demo)
main.add_command(download)
main.add_command(start)
main.add_command(status)
main.add_command(stop)
main.add_command(orders)
main.add_command(settings)
main.add_command(reload)
main.add_command(trade)
main.add_command(record)
main.add_command(sweep_command, name="sweep")
main.add_command(report_command, name="report")
