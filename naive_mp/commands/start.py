"""`naive-mp start`: the multi-process system in the foreground, until stopped or the replay ends."""

import json
import logging
import sys
import time
from pathlib import Path

import click

from naive_mp.commands import market
from naive_mp.commands.common import load_config_or_fail, resolve_strategy, strategy_options
from naive_mp.commands.output import check_output, write_output
from naive_mp.commands.status import run_dir_option
from naive_mp.logs import LOG_FORMATS, setup_logging
from naive_mp.runtime import rundir
from naive_mp.wire import RunSpec

TAPE_SUFFIXES = (".csv", ".zip")


@click.command()
@click.argument("args", nargs=-1, metavar="[SYMBOL...]")
@click.option("--replay", "tapes", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="TAPE",
              help="Replay this tape (.csv or .zip) instead of the live stream; repeatable, played in order.")
@click.option("--speed", default="max", show_default=True, metavar="N|max",
              help="Replay N times faster than recorded, or as fast as the system takes it.")
@click.option("--lockstep", is_flag=True,
              help="With --replay: each trade is fully handled before the next (orders equal backtest's).")
@click.option("--exit-at-end", is_flag=True, help="With --replay: stop everything once the last trade is handled.")
@click.option("--live", is_flag=True,
              help="REAL orders on Binance, with the API key of BINANCE_API_KEY / BINANCE_API_SECRET or --secrets.")
@click.option("--testnet", is_flag=True,
              help="Binance's spot test network (test money): its market, and with --live its orders.")
@click.option("--secrets", "secrets_file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --live: a TOML file of mode 0600 with api_key and api_secret.")
@click.option("--allow-loss", is_flag=True, help="With --live: accept a profit_target <= 0 (cycles that lose money).")
@strategy_options
@click.option("--orders-out", type=click.Path(dir_okay=False),
              help="At exit, write every order to this CSV file ('-': stdout).")
@click.option("--json", "as_json", is_flag=True, help="At exit, print the summary as one JSON object.")
@click.option("--metrics-addr", metavar="[HOST:]PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (HOST defaults to 127.0.0.1).")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              help="json: one JSON object a line (stderr and the run's log), for log shippers.")
@click.option("--record", "record_dir", type=click.Path(file_okay=False),
              help="Live: also write the trades to daily tapes in this folder, as `naive-mp record`.")
@click.option("--fresh", is_flag=True, help="Archive the run directory's unfinished run and start a new one.")
@run_dir_option
def start(args, tapes, speed, lockstep, exit_at_end, live, testnet, secrets_file, allow_loss, config_path, set_pairs,
          verbose, quiet, orders_out, as_json, metrics_addr, log_format, record_dir, fresh, run_dir, **filter_values):
    """Run the whole system: supervisor, streamer, gateway, leaders, one process per trader.

    SYMBOL... defaults to the symbols of the replayed tapes (from their file names).
    Paper trading unless --live. Stop it with Ctrl-C, SIGTERM or `naive-mp stop`. The same
    command on a stopped or killed run resumes it; --fresh archives it and starts over.
    """
    symbol_args, tapes = _split_args(args, tapes)
    _check_source(live, tapes, symbol_args, lockstep, exit_at_end)
    if (secrets_file or allow_loss) and not live:
        raise click.UsageError("--secrets and --allow-loss go with --live")
    if live:
        _take_keys(secrets_file)  # first: it may start this command over, without the keys in its environment
    if record_dir and tapes:
        raise click.UsageError("--record writes the live market's trades: it does not go with --replay")
    speed = _speed(speed)
    check_output(orders_out)
    metrics_addr = _metrics_addr(metrics_addr)
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    setup_logging(level, log_format=log_format)
    replay_symbols = _tape_symbols(tapes)
    replay_trades = _check_tapes(tapes, replay_symbols)
    symbols = _traded_symbols(symbol_args, replay_symbols)
    where = market.endpoints_or_fail(load_config_or_fail(config_path), testnet=testnet)
    asked = {} if tapes else market.live_filters(symbols, where)
    exchange = asked or market.cached_filters(Path(run_dir))
    settings, filters = resolve_strategy(config_path, set_pairs, symbols, filter_values, exchange)
    if live and not allow_loss:
        _refuse_losing_targets(settings)
    spec = RunSpec(endpoints=where, live=live, testnet=testnet, run_dir=str(Path(run_dir).absolute()), run_id=time.time_ns(), symbols=symbols,
                   settings=settings, filters=filters,
                   replay=[str(Path(t).absolute()) for t in tapes], replay_symbols=replay_symbols,
                   speed=speed, lockstep=lockstep, exit_at_end=exit_at_end, log_level=level,
                   metrics_addr=metrics_addr, log_format=log_format, replay_trades=replay_trades,
                   progress=not as_json and not quiet and sys.stderr.isatty(),
                   record_dir=str(Path(record_dir).absolute()) if record_dir else None)
    run_and_report(spec, orders_out, as_json, fresh=fresh, asked=asked)


def run_and_report(spec: RunSpec, orders_out: str | None = None, as_json: bool = False,
                   fresh: bool = False, asked: dict | None = None) -> None:
    """Run the supervisor in the foreground until the end, then report like backtest."""
    started = time.perf_counter()
    status = _run(spec, fresh, asked or {})
    elapsed = time.perf_counter() - started
    if status != 0:
        raise click.ClickException(f"the run failed (exit status {status}); see {rundir.log_path(spec.run_dir)}")
    _report(Path(spec.run_dir), spec.symbols, orders_out, as_json, elapsed)


def _split_args(args: tuple[str, ...], tapes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """`--replay A.zip B.zip` works too: file-like arguments after --replay are tapes."""
    symbols, more = [], []
    for arg in args:
        (more if arg.lower().endswith(TAPE_SUFFIXES) else symbols).append(arg)
    if more and not tapes:
        raise click.UsageError(f"{more[0]} looks like a tape: replay it with --replay {more[0]}")
    for path in more:
        if not Path(path).is_file():
            raise click.BadParameter(f"file {path!r} does not exist.", param_hint="--replay")
    return [s.upper() for s in symbols], [*tapes, *more]


def _check_source(live: bool, tapes: list[str], symbols: list[str], lockstep: bool, exit_at_end: bool) -> None:
    if live and tapes:
        raise click.UsageError("--live places real orders on the live market: it does not go with --replay")
    for flag, given in (("--lockstep", lockstep), ("--exit-at-end", exit_at_end)):
        if given and not tapes:
            raise click.UsageError(f"{flag} needs --replay TAPE")
    if not tapes and not symbols:
        raise click.UsageError("name the symbols to paper-trade on the live market (naive-mp start XRPUSDT), "
                               "or replay tapes (--replay TAPE...)")


def _take_keys(secrets_file: Path | None) -> None:
    """The API keys, out of this process's environment, handed to the gateway alone (exchange/secrets.py)."""
    from naive_mp.exchange.secrets import SecretsError, prepare
    try:
        prepare(secrets_file)
    except SecretsError as exc:
        raise click.ClickException(f"--live needs Binance API keys: {exc}") from None


def _refuse_losing_targets(settings: dict) -> None:
    losing = [f"{symbol} ({s.profit_target:f})" for symbol, s in settings.items() if s.profit_target <= 0]
    if losing:
        raise click.UsageError(f"profit_target <= 0 loses money on every cycle: {', '.join(losing)}. With real "
                               "orders that takes --allow-loss (or set a positive profit_target)")


def _metrics_addr(text: str | None) -> str | None:
    """HOST:PORT to serve metrics on (127.0.0.1 unless a host is given), checked free now."""
    if text is None:
        return None
    import socket
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected [HOST:]PORT with a port from 1 to 65535, got {text!r}",
                                 param_hint="--metrics-addr")
    try:
        with socket.create_server((host, int(port))):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                                 param_hint="--metrics-addr") from None
    return f"{host}:{port}"


# A thousandth of the recorded pace up to a million times it: beyond, the
# waits between trades become days (or nothing a float can tell from max).
MIN_SPEED, MAX_SPEED = 0.001, 1e6


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not MIN_SPEED <= value <= MAX_SPEED:  # also refuses nan and inf
        raise click.BadParameter(f"expected a number from {MIN_SPEED} to {MAX_SPEED:.0f} (times the recorded "
                                 f"pace), or 'max', got {text!r}", param_hint="--speed")
    return value


def _tape_symbols(tapes: list[str]) -> list[str]:
    from naive_mp.data.tapes import TapeError, symbol_from_path  # the tape reader is heavy (numpy)
    symbols = []
    for path in tapes:
        try:
            symbols.append(symbol_from_path(path))
        except TapeError:
            raise click.BadParameter(f"{path}: cannot tell the symbol from the file name "
                                     "(name it SYMBOL-trades-DAY.csv or .zip)", param_hint="--replay") from None
    return symbols


def _check_tapes(tapes: list[str], symbols: list[str]) -> list[int]:
    """Read every tape now (a malformed line is reported here, not by a streamer crash-looping); their lengths."""
    from naive_mp.data.tapes import TapeError, read_tape
    counts = []
    for path, symbol in zip(tapes, symbols):
        try:
            counts.append(len(read_tape(path, symbol)))
        except TapeError as exc:
            raise click.ClickException(str(exc)) from None
    return counts


def _traded_symbols(named: list[str], replayed: list[str]) -> list[str]:
    if not replayed:  # the live market: what was named
        return list(dict.fromkeys(named))
    if not named:
        return list(dict.fromkeys(replayed))
    for symbol in named:
        if symbol not in replayed:
            raise click.UsageError(f"{symbol}: no tape replays this symbol (tapes: {', '.join(replayed)})")
    return list(dict.fromkeys(named))


def _clear_results(run_dir: Path) -> None:
    """The gateway's end-of-run files of an earlier run must not pass for this run's."""
    for name in (rundir.ORDERS_FILE, rundir.SUMMARY_FILE):
        (run_dir / name).unlink(missing_ok=True)


def _run(spec: RunSpec, fresh: bool, asked: dict) -> int:
    from naive_mp.runtime.runs import open_run
    from naive_mp.runtime.supervisor import Supervisor

    def before_start(run_dir: Path) -> None:  # under the run directory's lock
        open_run(run_dir, spec, fresh)
        _clear_results(run_dir)
        if asked:  # for a later offline replay of these symbols
            market.save_filters(run_dir, asked, source=spec.endpoints.api_url)

    try:
        return Supervisor(spec, before_start=before_start).run()
    except rundir.RunDirError as exc:
        raise click.ClickException(str(exc)) from None


def _report(run_dir: Path, symbols: list[str], orders_out: str | None, as_json: bool, elapsed: float) -> None:
    """Copy the gateway's orders file and print its summary, as backtest does."""
    needed = [rundir.ORDERS_FILE] * bool(orders_out) + [rundir.SUMMARY_FILE] * as_json
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        raise click.ClickException(f"the run ended without its results ({run_dir / missing[0]} is missing); "
                                   f"see {rundir.log_path(run_dir)}")
    if orders_out:
        write_output(orders_out, (run_dir / rundir.ORDERS_FILE).read_text())
    summary_path = run_dir / rundir.SUMMARY_FILE
    if not summary_path.is_file():
        return
    summary = json.loads(summary_path.read_text())
    summary["elapsed_s"] = round(elapsed, 4)
    click.echo(json.dumps(summary) if as_json else _table(run_dir, summary, elapsed))


def _table(run_dir: Path, summary: dict, elapsed: float) -> str:
    """backtest's table for the run: its orders and fills from the store, its prices from the tapes."""
    import msgspec

    from naive_mp.backtest.report import Summary
    from naive_mp.data.tapes import read_tape, symbol_from_path
    from naive_mp.report.symbols import PriceTrack, report, table
    from naive_mp.store import Store
    summaries = [msgspec.convert(s, Summary, strict=False) for s in summary.get("per_symbol", [summary])]
    store = Store(run_dir, readonly=True)
    try:
        run, book, settings = store.run(), store.book(), store.settings()
    finally:
        store.close()
    tracks = {s.symbol: PriceTrack(ids=[], prices=[], decimals=[]) for s in summaries}
    for path in run.command.tapes:
        tape = read_tape(path, symbol_from_path(path))
        if tape.symbol in tracks:
            tracks[tape.symbol].add(tape)
    symbol_of_order = {o.order_id: o.symbol for o in book.orders}
    reports = [report(s, [o for o in book.orders if o.symbol == s.symbol],
                      [f for f in book.fills if symbol_of_order[f.order_id] == s.symbol],
                      settings[s.symbol][0].fee, settings[s.symbol][0].budget, tracks[s.symbol]) for s in summaries]
    return table(summaries, reports, elapsed)
