"""Exchange filters from Binance's exchangeInfo, and a cache file of them for offline runs.

    filters = fetch_filters(["XRPUSDT"], api_url=api_url)   # {"XRPUSDT": Filters(...)}
    save_filters(cache_path, filters)                        # JSON, atomic, merged with the file
    load_filters(cache_path)                                 # {} if there is no file yet
    exchange_filters(symbols, cache=cache_path, api_url=api_url, offline=False)

`exchange_filters` is the usual way in: it asks Binance and refreshes the
cache; when Binance cannot be reached it falls back to the cache (with a
warning) if the cache has every symbol; `offline=True` reads the cache only.

Every failure is an `ExchangeInfoError` whose message names what is wrong
and what to do: show it, without a traceback. `ExchangeUnreachable` (a
subclass) means the network or Binance's availability, not our request.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import quote

import msgspec
import requests
from binance import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException

from naive_mp.core.settings import Filters, SettingError
from naive_mp.exchange.binance_urls import API_URL, SYMBOL, rest_root
from naive_mp.exchange.errors import ExchangeInfoError, ExchangeUnreachable
from naive_mp.files import write_atomically

log = logging.getLogger("naive_mp.exchange.binance_info")

TIMEOUT_S = 5.0
INVALID_SYMBOL = -1121
CACHE_VERSION = 1






# -- exchangeInfo -> Filters (pure) ---------------------------------------------------


def symbol_filters(entry: dict) -> Filters:
    """The Filters of one exchangeInfo symbol entry (ExchangeInfoError if it is not trading or unusable)."""
    symbol = entry.get("symbol", "?")
    if entry.get("status") != "TRADING":
        raise ExchangeInfoError(f"{symbol} is not trading on Binance (status {entry.get('status')})")
    by_type = {f.get("filterType"): f for f in entry.get("filters", [])}
    # NOTIONAL replaced MIN_NOTIONAL in 2023; older answers (and caches of them) have the latter.
    notional = by_type.get("NOTIONAL") or by_type.get("MIN_NOTIONAL")
    try:
        price, lot = by_type["PRICE_FILTER"], by_type["LOT_SIZE"]
        return Filters(tick_size=Decimal(price["tickSize"]), step_size=Decimal(lot["stepSize"]),
                       min_qty=Decimal(lot.get("minQty", "0")),
                       min_notional=Decimal(notional["minNotional"]) if notional else Decimal(0))
    except KeyError as exc:
        raise ExchangeInfoError(f"{symbol}: exchangeInfo lacks {exc.args[0]}") from None
    except (InvalidOperation, TypeError, SettingError) as exc:
        raise ExchangeInfoError(f"{symbol}: unusable filters in exchangeInfo: {exc}") from None


def filters_from_info(info: dict, symbols: list[str]) -> dict[str, Filters]:
    """The Filters of each of `symbols` in an exchangeInfo answer."""
    entries = {entry.get("symbol"): entry for entry in info.get("symbols", [])}
    unknown = [s for s in symbols if s not in entries]
    if unknown:
        raise _unknown_error(unknown)
    return {s: symbol_filters(entries[s]) for s in symbols}


def _unknown_error(unknown: list[str]) -> ExchangeInfoError:
    plural = "s" if len(unknown) > 1 else ""
    return ExchangeInfoError(f"unknown symbol{plural} on Binance: {', '.join(unknown)}")


def _symbols(symbols) -> list[str]:
    symbols = list(dict.fromkeys(s.upper() for s in symbols))
    bad = [s for s in symbols if not SYMBOL.fullmatch(s)]
    if not symbols or bad:
        raise ExchangeInfoError(f"not a Binance symbol: {', '.join(bad) or '(none given)'}")
    return symbols


# -- asking Binance --------------------------------------------------------------------


def fetch_filters(symbols, *, api_url: str = API_URL, timeout_s: float = TIMEOUT_S) -> dict[str, Filters]:
    """Ask Binance's exchangeInfo (through python-binance) for the filters of `symbols`."""
    symbols = _symbols(symbols)
    # ping=False: one request is enough, and its failure is ours to word
    client = Client(ping=False, requests_params={"timeout": timeout_s})
    client.API_URL = rest_root(api_url)
    try:
        return filters_from_info(_ask(client, symbols, api_url, timeout_s), symbols)
    finally:
        client.close_connection()


def _ask(client: Client, symbols: list[str], api_url: str, timeout_s: float) -> dict:
    try:
        return _exchange_info(client, symbols=json.dumps(symbols, separators=(",", ":")))
    except BinanceAPIException as exc:
        if exc.code == INVALID_SYMBOL:  # Binance does not say which: ask for each
            unknown = [s for s in symbols if _is_unknown(client, s, api_url, timeout_s)]
            raise _unknown_error(unknown or symbols) from None
        raise _refusal(exc, api_url) from None
    except (requests.RequestException, BinanceRequestException) as exc:
        raise _unreachable(exc, api_url, timeout_s) from None


def _exchange_info(client: Client, **params) -> dict:
    # get_exchange_info() takes no parameter and would download every symbol
    # (megabytes): ask for ours only, through the client's own GET. Its query
    # string is written as given, so the JSON list is quoted here.
    return client._get("exchangeInfo", data={k: quote(v) for k, v in params.items()})


def _is_unknown(client: Client, symbol: str, api_url: str, timeout_s: float) -> bool:
    try:
        _exchange_info(client, symbol=symbol)
        return False
    except BinanceAPIException as exc:
        if exc.code == INVALID_SYMBOL:
            return True
        raise _refusal(exc, api_url) from None
    except (requests.RequestException, BinanceRequestException) as exc:
        raise _unreachable(exc, api_url, timeout_s) from None


def _refusal(exc: BinanceAPIException, api_url: str) -> ExchangeInfoError:
    status = exc.status_code
    if status in (418, 429) or status >= 500:
        wait = exc.response.headers.get("Retry-After") if exc.response is not None else None
        later = f", retry after {wait} s" if wait else ", try again later"
        return ExchangeUnreachable(f"Binance at {api_url} answered HTTP {status} to exchangeInfo{later}")
    return ExchangeInfoError(f"Binance at {api_url} refused exchangeInfo: {exc.code} {exc.message}")


def _unreachable(exc: Exception, api_url: str, timeout_s: float) -> ExchangeUnreachable:
    if isinstance(exc, requests.Timeout):
        why = f"no answer within {timeout_s:g} s"
    elif isinstance(exc, requests.ConnectionError):
        errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
        why = f"cannot connect ({errno.group(1).strip() if errno else type(exc).__name__})"
    else:
        why = str(exc)
    return ExchangeUnreachable(f"cannot get exchangeInfo from {api_url}: {why}; check the network and "
                               f"[binance] api_url, or run offline from the filters cache")


# -- the cache file ----------------------------------------------------------------------


class CachedFilters(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol's entry in the cache file."""

    filters: Filters
    fetched_at: str = ""  # UTC, ISO 8601
    source: str = ""  # the REST URL they came from


class FiltersCache(msgspec.Struct, kw_only=True):
    """The cache file: {"version": 1, "symbols": {"XRPUSDT": {"filters": {...}, "fetched_at": ..., "source": ...}}}."""

    version: int
    symbols: dict[str, CachedFilters]


def read_cache(path: str | Path) -> dict[str, CachedFilters]:
    """Everything in the cache file at `path` ({} if there is none)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ExchangeInfoError(f"cannot read the filters cache {path}: {exc.strerror}") from None
    try:
        cache = msgspec.json.decode(data, type=FiltersCache)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ExchangeInfoError(f"the filters cache {path} is unusable ({exc}): delete it, "
                                "and run once with the network") from None
    if cache.version != CACHE_VERSION:
        raise ExchangeInfoError(f"the filters cache {path} has version {cache.version}, not {CACHE_VERSION}: "
                                "delete it, and run once with the network")
    return cache.symbols


def load_filters(path: str | Path) -> dict[str, Filters]:
    """The filters in the cache file at `path`, per symbol ({} if there is no file)."""
    return {symbol: cached.filters for symbol, cached in read_cache(path).items()}


def save_filters(path: str | Path, filters: dict[str, Filters], source: str = "") -> None:
    """Write `filters` into the cache file at `path`, atomically, keeping its other symbols."""
    path = Path(path)
    try:
        kept = read_cache(path)
    except ExchangeInfoError as exc:  # a broken cache is replaced, not an obstacle
        log.warning("%s; writing a new one", exc)
        kept = {}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entries = {s: {"filters": _plain(c.filters), "fetched_at": c.fetched_at, "source": c.source}
               for s, c in kept.items()}
    entries.update({s: {"filters": _plain(f), "fetched_at": now, "source": source} for s, f in filters.items()})
    document = {"version": CACHE_VERSION, "symbols": dict(sorted(entries.items()))}
    write_atomically(path, json.dumps(document, indent=2) + "\n")


def _plain(filters: Filters) -> dict[str, str]:
    # f"{d:f}": "0.00000100", where str() would write "0.0000010" or "1.0E-7"
    return {key: f"{value:f}" for key, value in msgspec.structs.asdict(filters).items()}




# -- the usual way in ----------------------------------------------------------------------


def exchange_filters(symbols, *, cache: str | Path | None = None, api_url: str = API_URL,
                     timeout_s: float = TIMEOUT_S, offline: bool = False) -> dict[str, Filters]:
    """Filters per symbol: from Binance (refreshing `cache`), or from `cache` when offline or unreachable."""
    symbols = _symbols(symbols)
    if offline:
        return _from_cache(symbols, cache, "offline")
    try:
        filters = fetch_filters(symbols, api_url=api_url, timeout_s=timeout_s)
    except ExchangeUnreachable as exc:
        if cache is None or any(s not in load_filters(cache) for s in symbols):
            raise
        log.warning("%s: using the cached filters of %s", exc, cache)
        return _from_cache(symbols, cache, "unreachable")
    if cache is not None:
        try:
            save_filters(cache, filters, source=rest_root(api_url))
        except OSError as exc:  # only a cache: the run can go on without it
            log.warning("cannot write the filters cache %s: %s", cache, exc)
    return filters


def _from_cache(symbols: list[str], cache: str | Path | None, why: str) -> dict[str, Filters]:
    cached = load_filters(cache) if cache is not None else {}
    missing = [s for s in symbols if s not in cached]
    if missing:
        where = f"in {cache}" if cache is not None else "(no cache file given)"
        raise ExchangeInfoError(f"no cached filters for {', '.join(missing)} {where}: run once with the network, "
                                "or give --tick-size and --step-size")
    return {s: cached[s] for s in symbols}
