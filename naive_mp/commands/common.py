"""Options and helpers shared by the trading commands."""

import functools
import logging
import sys
import time

import click

from naive_mp.config import ConfigError, filters_for, load_config, parse_set_options, settings_for
from naive_mp.core.settings import SettingError

log = logging.getLogger("naive_mp.cli")

FILTER_FLAGS = {"tick_size": "--tick-size", "step_size": "--step-size",
                "min_notional": "--min-notional", "min_qty": "--min-qty"}


def strategy_options(command):
    """--config, --set and the exchange filter flags, shared by every trading command."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="TOML settings file (default: $NAIVE_MP_CONFIG, else built-in defaults)."),
        click.option("--set", "set_pairs", multiple=True, metavar="KEY=VALUE",
                     help="Override one strategy setting for this run (repeatable)."),
        *[click.option(flag, key, metavar="D", help=f"Exchange {key.replace('_', ' ')} when no exchange can be asked.")
          for key, flag in FILTER_FLAGS.items()],
        click.option("-v", "--verbose", count=True, help="More log lines (-v: every order and trader)."),
        click.option("-q", "--quiet", is_flag=True, help="Fewer lines: only errors, and the result."),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def progress_bar(length: int, label: str, unit: str, scale: float = 1.0, **options):
    """click's progress bar on stderr, with the rate beside its position and ETA (e.g. "1,234 backtests/s")."""
    holder = {}

    def rate(_item) -> str:
        bar = holder.get("bar")
        if bar is None or bar.pos == 0:
            return ""
        seconds = max(time.time() - bar.start, 1e-9)
        return f"{bar.pos / scale / seconds:,.1f} {unit}/s"
    bar = click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True, item_show_func=rate,
                            **options)
    holder["bar"] = bar
    return bar


def resolve_strategy(config_path, set_pairs, symbols, filter_values, exchange_filters=None):
    """(settings by symbol, filters by symbol) or a click error naming what is wrong.

    `exchange_filters` (symbol -> Filters, from exchangeInfo or its cache) fills what
    neither the flags nor the config file give.
    """
    try:
        overrides = parse_set_options(set_pairs)
    except SettingError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    try:
        config = load_config(config_path)
        settings, filters = {}, {}
        for symbol in symbols:
            settings[symbol] = settings_for(config, symbol, overrides)
            fallback = (exchange_filters or {}).get(symbol)
            filters[symbol], notes = filters_for(config, symbol, filter_values, fallback)
            for note in notes:
                log.warning("%s", note)
    except SettingError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return _one_fee(settings), filters


def load_config_or_fail(config_path):
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _one_fee(settings: dict) -> dict:
    fees = {s.fee for s in settings.values()}
    if len(fees) > 1:
        raise click.UsageError("fee: the paper exchange charges one fee, but the symbols' settings differ: "
                               + ", ".join(f"{sym} {s.fee}" for sym, s in settings.items()))
    return settings
