"""`naive-mp record SYMBOL... [--dir DIR]`: the live trade stream written to daily tapes."""

import logging
import select
import signal

import click

from naive_mp.commands import market
from naive_mp.commands.common import load_config_or_fail
from naive_mp.data.recorder import DailyTapes
from naive_mp.logs import setup_logging

log = logging.getLogger("naive_mp.record")


@click.command()
@click.argument("symbols", nargs=-1, required=True)
@click.option("--dir", "folder", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder of the daily tapes (SYMBOL-trades-YYYY-MM-DD.csv).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file ([binance] endpoints).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def record(symbols, folder, config_path, quiet):
    """Write the live trades of SYMBOL... to daily tapes in Binance's public-data layout, until Ctrl-C.

    Run again, it goes on after the last trade a tape holds (backfilled over REST),
    so a day recorded in several sittings is one tape with no gap and no repeat.
    """
    from naive_mp.exchange.binance_stream import LiveTrades
    setup_logging(logging.WARNING if quiet else logging.INFO)
    symbols = list(dict.fromkeys(s.upper() for s in symbols))
    where = market.endpoints_or_fail(load_config_or_fail(config_path))
    market.live_filters(symbols, where)  # unknown symbols and no network: said now, not retried for ever
    tapes = DailyTapes(folder)
    live = LiveTrades(symbols, last_ids=tapes.resume_from(symbols), api_url=where.api_url, stream_url=where.stream_url)
    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.append(1))
    live.start()
    log.info("recording %s to %s (Ctrl-C to stop)", ", ".join(symbols), tapes.folder)
    try:
        while not stop:
            try:
                select.select([live.fileno()], [], [], 0.5)
            except InterruptedError:
                continue
            for symbol, trades in live.take().items():
                tapes.write(symbol, trades)
    finally:
        live.close()
    click.echo(f"recorded {tapes.written:,} trades to {tapes.folder}")
