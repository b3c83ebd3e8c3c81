"""A trader's state: all a leader caches to restart it after a crash."""

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from naive_mp.core.formulas import CyclePlan
from naive_mp.core.settings import Filters, Settings

Phase = Literal["NEW", "BUY_PLACED", "SELL_PLACED", "DONE", "FAILED", "UNTRADABLE"]

# A trader in one of these phases does nothing more; the leader decides what next.
FINAL_PHASES = frozenset({"DONE", "FAILED", "UNTRADABLE"})


class TraderState(msgspec.Struct, frozen=True, kw_only=True):
    """One trader of one symbol. Immutable: each step returns a new one."""

    symbol: str
    trader_id: Annotated[int, Meta(ge=1, le=2**62)]
    settings: Settings
    filters: Filters
    phase: Phase = "NEW"
    cycle: Annotated[int, Meta(ge=1, le=2**62)] = 1
    plan: CyclePlan | None = None
    rebuy_notified: bool = False
    # The trade event of the last change: a trade up to it was applied already (a
    # restarted streamer or trader sees it again), so handling it again does nothing.
    last_trade_id: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 0
    # A SELL canceled by someone else is placed again under a new client order id: the n-th try.
    sell_attempt: Annotated[int, Meta(ge=1, le=1000)] = 1
    # Why the trader ended FAILED or UNTRADABLE, for the leader's log line.
    reason: str | None = None

    def client_order_id(self, side: str) -> str:
        """Stable per symbol, trader, cycle and side, so a retry can ask before placing again.

        Binance allows 1-36 characters of [.A-Z:/a-z0-9_-]; symbols are at most 20.
        A SELL placed again after a cancel gets its try number: XRPUSDT-7-2-S2.
        """
        again = str(self.sell_attempt) if side == "SELL" and self.sell_attempt > 1 else ""
        return f"{self.symbol}-{self.trader_id}-{self.cycle}-{side[0]}{again}"

    @staticmethod
    def trader_id_of(client_order_id: str) -> int:
        """The trader id inside a client order id built by `client_order_id`."""
        return int(client_order_id.rsplit("-", 3)[1])

    @property
    def label(self) -> str:
        """How logs and process titles name the trader: XRPUSDT#7."""
        return f"{self.symbol}#{self.trader_id}"
