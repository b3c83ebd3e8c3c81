"""Settings and filters from a TOML file, the environment and the command line.

The file (see etc/naive-mp.toml) has a `[settings]` table of strategy
defaults and one `[symbols.SYMBOL]` table per symbol holding its exchange
filters and any setting that differs for it. TOML floats are read as exact
decimals, never as binary floats.
"""

import os
import tomllib
from decimal import Decimal

import msgspec

from naive_mp.core.money import parse_decimal
from naive_mp.core.settings import (
    FILTER_KEYS,
    SETTING_KEYS,
    Filters,
    Settings,
    SettingError,
    setting_value,
    with_overrides,
)

CONFIG_ENV = "NAIVE_MP_CONFIG"
TABLES = {"settings", "symbols", "binance", "runtime"}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and key."""


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """What the config file said (all values still as given: text or Decimal)."""

    path: str | None = None
    settings: dict = {}
    symbols: dict = {}
    binance: dict = {}  # endpoints: naive_mp.exchange.endpoints reads them


def load_config(path: str | os.PathLike | None = None) -> Config:
    """The file at `path`, else at $NAIVE_MP_CONFIG, else the built-in defaults."""
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is None:
        return Config()
    data = _read_toml(path)
    _check_shape(path, data)
    config = Config(path=str(path), settings=data.get("settings", {}), symbols=data.get("symbols", {}),
                    binance=data.get("binance", {}))
    settings_for(config, None)  # refuse a bad default now, not at the first symbol
    return config


def _read_toml(path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f, parse_float=Decimal)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # tomllib decodes as it parses: a binary file fails here
        raise ConfigError(f"config file {path} is not UTF-8 text, so not a TOML file: "
                          "pass a file like etc/naive-mp.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _check_shape(path, data: dict) -> None:
    """Tables where tables belong and plain values in them.

    Valid TOML can still hold `settings = "oops"` or `[symbols] XRPUSDT = 5`;
    refused here, by file and key, the rest of the code can trust the shape.
    """
    unknown = set(data) - TABLES
    if unknown:
        raise ConfigError(f"config file {path}: unknown table(s) {', '.join(sorted(unknown))}")
    for name in sorted(TABLES & set(data)):
        _need_table(path, name, data[name])
    _check_values(path, "settings", data.get("settings", {}))
    for symbol, table in data.get("symbols", {}).items():
        _need_table(path, f"symbols.{symbol}", table)
        _check_values(path, f"symbols.{symbol}", table)


def _need_table(path, name: str, value) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"config file {path}: [{name}] must be a table (a [{name}] line, then "
                          f"KEY = VALUE lines), not {_kind(value)}")


def _check_values(path, name: str, table: dict) -> None:
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ConfigError(f"{path} [{name}]: {key}: must be a number or a string, not {_kind(value)}")


def _kind(value) -> str:
    """What TOML calls this value, for messages."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, Decimal)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a date or time ({value})"


def _where(config: Config, table: str) -> str:
    return f"{config.path or 'built-in defaults'} [{table}]"


def settings_for(config: Config, symbol: str | None, overrides: dict | None = None) -> Settings:
    """Built-in defaults, then [settings], then [symbols.SYMBOL], then `--set` overrides."""
    layers = [("settings", config.settings)]
    if symbol is not None:
        table = config.symbols.get(symbol, {})
        layers.append((f"symbols.{symbol}", {k: v for k, v in table.items() if k not in FILTER_KEYS}))
    settings = Settings()
    for name, layer in layers:
        try:
            settings = with_overrides(settings, {k: str(v) for k, v in layer.items()})
        except SettingError as exc:
            raise ConfigError(f"{_where(config, name)}: {exc}") from None
    # --set errors are the caller's to report: they name a flag, not a file
    return with_overrides(settings, overrides or {})


def parse_set_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """`KEY=VALUE` strings from `--set` into a dict, each checked (SettingError)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise SettingError(key or pair, f"expected KEY=VALUE, got {pair!r}")
        setting_value(key, value)
        overrides[key] = value.strip()
    return overrides


def filters_for(config: Config, symbol: str, given: dict[str, str | None],
                fallback: Filters | None = None) -> tuple[Filters, list[str]]:
    """Filters from command-line flags, else the file's [symbols.SYMBOL] table, else `fallback`
    (the exchange's, asked now or cached in the run directory).

    Returns the filters and notes to log once (a minimum that counts as 0).
    """
    table = config.symbols.get(symbol, {})
    values, notes = {}, []
    for key in FILTER_KEYS:
        raw = given.get(key)
        if raw is None:
            raw = table.get(key)
        if raw is None and fallback is not None:
            raw = getattr(fallback, key)
        if raw is None:
            if key in ("tick_size", "step_size"):
                flag = "--" + key.replace("_", "-")
                raise ConfigError(
                    f"{symbol}: no {key}: pass {flag} or set it in the [symbols.{symbol}] "
                    "table of the config file"
                )
            notes.append(f"{symbol}: no {key} given, counting it as 0")
            continue
        try:
            values[key] = parse_decimal(str(raw), key)
        except ValueError as exc:
            raise ConfigError(f"{symbol}: {exc}") from None
    try:
        return Filters(**values), notes
    except SettingError as exc:
        raise ConfigError(f"{symbol}: {exc}") from None


__all__ = ["CONFIG_ENV", "Config", "ConfigError", "SETTING_KEYS", "filters_for", "load_config",
           "parse_set_options", "settings_for"]
