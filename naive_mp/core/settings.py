"""Strategy settings and exchange filters: frozen, validated msgspec Structs.

A value that breaks a rule raises `SettingError` naming the key, both when
built in code and when decoded from TOML or a `--set` override.
"""

from decimal import Decimal

import msgspec

from naive_mp.core.money import ONE, ZERO, parse_decimal


class SettingError(ValueError):
    """A setting or filter value is invalid; `key` names it."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key


# Every trader is an OS process (and a row, a socket, a log line...): a
# thousand per symbol is far beyond any sane run and still starts.
MAX_CHUNKS = 1000

# The size of every decimal setting and filter other than 0: far beyond
# any market either way. The bound is what keeps money.EXACT's 60 digits
# enough: the formulas' integer quotients (a price over a tick, a budget
# over a buy price times a step) then stay under 1E+56 with a tape's prices
# (int64 units), where a wider range made them raise DivisionImpossible
# inside a trader.
SMALLEST, LARGEST = Decimal("1E-18"), Decimal("1E+18")


def _in_range(key: str, value: Decimal) -> None:
    if value != 0 and not SMALLEST <= abs(value) <= LARGEST:
        raise SettingError(key, f"{value} is out of range: other than 0, its size must lie "
                                f"between {SMALLEST} and {LARGEST}")


def _fraction(key: str, value: Decimal) -> None:
    if not ZERO <= value < ONE:
        raise SettingError(key, f"must be >= 0 and < 1, got {value}")


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-symbol strategy settings; defaults are the book's chapter 8 values."""

    chunks: int = 5
    budget: Decimal = Decimal("100")
    buy_down_interval: Decimal = Decimal("0.0001")
    profit_target: Decimal = Decimal("-0.0012")
    rebuy_interval: Decimal = Decimal("0.001")
    fee: Decimal = Decimal("0.001")

    def __post_init__(self):
        if self.chunks < 1:
            raise SettingError("chunks", f"must be at least 1, got {self.chunks}")
        if self.chunks > MAX_CHUNKS:
            raise SettingError("chunks", f"must be at most {MAX_CHUNKS} (each trader is an OS process), "
                                         f"got {self.chunks}")
        if self.budget <= 0:
            raise SettingError("budget", f"must be > 0, got {self.budget}")
        for key in ("budget", "buy_down_interval", "profit_target", "rebuy_interval", "fee"):
            _in_range(key, getattr(self, key))
        _fraction("buy_down_interval", self.buy_down_interval)
        _fraction("rebuy_interval", self.rebuy_interval)
        _fraction("fee", self.fee)
        if self.profit_target <= -1:
            raise SettingError("profit_target", f"must be > -1, got {self.profit_target}")



SETTING_KEYS = tuple(Settings.__struct_fields__)


FILTER_RANGE_KEYS = ("tick_size", "step_size", "min_qty", "min_notional")


class Filters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The exchange's grid and minimums for one symbol (Binance exchangeInfo)."""

    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)

    def __post_init__(self):
        for key in FILTER_RANGE_KEYS:
            _in_range(key, getattr(self, key))
        for key in ("tick_size", "step_size"):
            if getattr(self, key) <= 0:
                raise SettingError(key, f"must be > 0, got {getattr(self, key)}")
        for key in ("min_qty", "min_notional"):
            if getattr(self, key) < 0:
                raise SettingError(key, f"must be >= 0, got {getattr(self, key)}")


FILTER_KEYS = tuple(Filters.__struct_fields__)


def setting_value(key: str, text: str):
    """Parse one `--set KEY=VALUE` value into the type of `key` (SettingError if bad)."""
    if key not in SETTING_KEYS:
        raise SettingError(key, f"unknown setting (known: {', '.join(SETTING_KEYS)})")
    if key == "chunks":
        try:
            return int(str(text).strip())
        except ValueError:
            raise SettingError(key, f"must be a whole number, got {text!r}") from None
    try:
        return parse_decimal(text, key)
    except ValueError as exc:
        raise SettingError(key, str(exc).split(": ", 1)[1]) from None


def with_overrides(settings: Settings, overrides: dict) -> Settings:
    """`settings` with `overrides` (key -> text) applied and validated."""
    values = msgspec.structs.asdict(settings)
    for key, text in overrides.items():
        values[key] = setting_value(key, text)
    return Settings(**values)
