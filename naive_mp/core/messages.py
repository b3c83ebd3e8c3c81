"""Events (facts, past tense) and commands (imperative) of the pure core.

All are frozen, tagged msgspec Structs, so the runtime sends them over its
sockets exactly as the backtester passes them between functions.
"""

from decimal import Decimal
from typing import Literal

import msgspec

from naive_mp.core.settings import Settings
from naive_mp.core.state import TraderState

Side = Literal["BUY", "SELL"]


class Message(msgspec.Struct, frozen=True, tag=True):
    """Base of every event and command: tagged by class name."""


# -- events a trader handles ------------------------------------------------


class TradeSeen(Message):
    """A trade printed on the exchange."""

    symbol: str
    trade_id: int
    price: Decimal
    time_us: int = 0


class OrderFilled(Message):
    """One of the trader's orders filled (in full, or as far as it will: a BUY canceled part-filled).

    `price` is the average price paid. `received`: what of the base asset the
    account got, when the exchange took the BUY's fee out of it (Binance spot);
    the SELL is for that, floored to the step. None: the whole quantity (paper).
    """

    client_order_id: str
    order_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    trade_id: int
    received: Decimal | None = None


class OrderRejected(Message):
    """The exchange refused one of the trader's orders."""

    client_order_id: str
    side: Side
    code: int
    reason: str


class OrderCanceled(Message):
    """One of the trader's open orders was canceled (by anyone: a person on the exchange, say).

    `remaining`: what was still to sell of a SELL that had filled in part (None: all of it).
    """

    client_order_id: str
    side: Side
    remaining: Decimal | None = None


class OrderChecked(Message):
    """What the exchange said of one of the trader's client order ids (after a restart).

    `status` is None when the exchange has no such order.
    """

    client_order_id: str
    side: Side
    status: str | None
    price: Decimal | None = None
    quantity: Decimal | None = None
    trade_id: int | None = None
    received: Decimal | None = None  # as OrderFilled's, for a FILLED order
    executed: Decimal | None = None  # how much of it filled (of a CANCELED SELL: the rest is sold again)


# -- commands a trader gives ------------------------------------------------


class PlaceOrder(Message):
    """Place a LIMIT GTC order."""

    client_order_id: str
    symbol: str
    trader_id: int
    side: Side
    price: Decimal
    quantity: Decimal


class RequestRebuy(Message):
    """Ask the leader for one more trader: the price fell under the rebuy threshold."""

    trader_id: int


# -- events a leader handles ------------------------------------------------


class TradingStarted(Message):
    """Trading of the symbol starts (or resumes); `shutdown`: only to finish what runs."""

    shutdown: bool = False


class TradingStopped(Message):
    """Stop the symbol's traders now, keeping their states and orders to resume later."""


class RebuyRequested(Message):
    """A trader asked for one more trader."""

    trader_id: int


class TraderReported(Message):
    """A trader's new state (its cache entry at the leader)."""

    state: TraderState


class TraderDied(Message):
    """A trader's process ended without finishing; its driver restarts it after `delay_s`.

    The delay comes from the driver's restart policy (naive_mp.runtime.children):
    only the driver sees processes boot, say hello and die.
    """

    trader_id: int
    delay_s: float = 0.0


class TraderGivenUp(Message):
    """A trader's process keeps dying before it is up (`why`): it is not restarted again."""

    trader_id: int
    why: str


class SettingsChanged(Message):
    """New settings for the traders started from now on."""

    settings: Settings


class ShutdownRequested(Message):
    """Finish gracefully: no rebuys, no replacements, stop when the last is done."""


# -- commands a leader gives -------------------------------------------------


class StartTrader(Message):
    """Run a trader from `state` (fresh, or cached when `restart`) after `delay_s`."""

    state: TraderState
    restart: bool = False
    delay_s: float = 0.0


class Notice(Message):
    """Something worth a log line; the core does not log, its driver does."""

    level: Literal["info", "warning", "error"]
    text: str


class SymbolStopped(Message):
    """The symbol's last trader finished after a shutdown."""

    symbol: str
