"""Typed records of the state database (frozen msgspec Structs, stored as JSON)."""

import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from naive_mp.core.money import fmt
from naive_mp.core.settings import Filters, Settings


class RunCommand(msgspec.Struct, frozen=True, kw_only=True):
    """What makes two `start` commands the same run: another one is refused on an unfinished run."""

    kind: Literal["replay", "live"]
    symbols: list[str]
    tapes: list[str] = []
    lockstep: bool = False
    settings: dict[str, Settings] = {}
    filters: dict[str, Filters] = {}
    orders: Literal["paper", "live", "testnet"] = "paper"  # where orders go: a paper run never resumes as real

    def describe(self) -> str:
        if self.kind == "live":
            where = {"paper": "paper", "live": "REAL orders on Binance", "testnet": "Binance's test network"}
            return f"live trading of {', '.join(self.symbols)} ({where[self.orders]})"
        mode = " in lockstep" if self.lockstep else ""
        return f"replay{mode} of {', '.join(Path(t).name for t in self.tapes)}"

    def differences(self, other: "RunCommand") -> list[str]:
        """What `other` changes, one phrase each (empty: the same command)."""
        changed = []
        for field in self.__struct_fields__:
            mine, theirs = getattr(self, field), getattr(other, field)
            if mine != theirs:
                changed.append(f"{field} {_show(mine)} -> {_show(theirs)}")
        return changed


def _show(value) -> str:
    builtins = msgspec.to_builtins(value)
    if isinstance(builtins, list):
        return "[" + ", ".join(os.path.basename(str(v)) for v in builtins) + "]"
    return msgspec.json.encode(builtins).decode()


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    run_id: int  # time.time_ns() when the run began
    command: RunCommand
    started_at: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"the run started {when} ({self.command.describe()})"


Count = Annotated[int, Meta(ge=0, le=2**62)]


class LeaderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a leader keeps besides its traders' states."""

    symbol: str
    next_trader_id: Annotated[int, Meta(ge=1, le=2**62)] = 1
    max_traders: Count = 0
    last_seq: Count = 0  # lockstep: the last trade event it fully handled
    shutting_down: bool = False
    untradable: str | None = None
    lost: Count = 0  # trades its traders found missing from their streams (free-running)


class FeedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway applied of one symbol's trade stream."""

    last_seq: Count = 0
    last_trade_id: Count = 0
    last_price: Decimal | None = None
    lost: Count = 0

    @property
    def events(self) -> int:
        """Trade events applied: every seq up to the last, but the ones lost."""
        return self.last_seq - self.lost


class StreamPosition(msgspec.Struct, frozen=True, kw_only=True):
    """Where the replay stands: the next trade to send is `offset` in tape number `tape`."""

    tape: Count = 0
    offset: Count = 0
    seq: dict[str, Count] = {}  # last seq published per symbol
    ended: bool = False
    last_ids: dict[str, Count] = {}  # live: the last trade id published per symbol (a successor backfills from it)


class SettingChange(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    symbol: str
    key: str
    old: str | None
    new: str
    source: str


TradingStatus = Literal["start", "stop", "shutdown"]
TRADING_STATUSES = ("start", "stop", "shutdown")


def setting_text(value) -> str:
    return fmt(value) if isinstance(value, Decimal) else str(value)


encode = msgspec.json.Encoder(decimal_format="string").encode
