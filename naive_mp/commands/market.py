"""Where `start` gets Binance's facts: endpoints, exchange filters (asked now, or cached in the run directory)."""

from pathlib import Path

import click

from naive_mp.config import Config
from naive_mp.core.settings import Filters
from naive_mp.exchange.endpoints import EndpointError, Endpoints, endpoints

FILTERS_CACHE = "exchange-info.json"  # in the run directory: an offline replay of these symbols needs no flags


def endpoints_or_fail(config: Config, testnet: bool = False) -> Endpoints:
    try:
        return endpoints(config.binance, testnet=testnet)
    except EndpointError as exc:
        raise click.UsageError(str(exc)) from None


def live_filters(symbols: list[str], where: Endpoints) -> dict[str, Filters]:
    """Each symbol's filters from exchangeInfo now: an unknown, non-trading or unreachable one stops `start`."""
    from naive_mp.exchange.binance_info import ExchangeInfoError, ExchangeUnreachable, fetch_filters
    try:
        return fetch_filters(symbols, api_url=where.api_url)
    except ExchangeUnreachable as exc:
        raise click.ClickException(
            f"the live market cannot be reached: {exc}\nWithout a network, replay a tape "
            "(naive-mp start --replay TAPE ...) or run `naive-mp demo`") from None
    except ExchangeInfoError as exc:
        raise click.ClickException(str(exc)) from None


def cached_filters(run_dir: Path) -> dict[str, Filters]:
    """Filters a live run of this run directory saved (an empty dict when there are none)."""
    from naive_mp.exchange.binance_info import ExchangeInfoError, load_filters
    try:
        return load_filters(Path(run_dir) / FILTERS_CACHE)
    except (ExchangeInfoError, OSError):  # only a cache: the flags and the config still apply
        return {}


def save_filters(run_dir: Path, filters: dict[str, Filters], source: str) -> None:
    from naive_mp.exchange.binance_info import save_filters as save
    save(Path(run_dir) / FILTERS_CACHE, filters, source=source)
