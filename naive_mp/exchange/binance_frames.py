"""Binance trade data decoded by msgspec straight into Structs (pure: no IO).

Two sources carry the same trades:

- the websocket trade stream, one JSON text frame per trade, either raw
  (`/ws/<symbol>@trade`: the event itself) or combined
  (`/stream?streams=...`: `{"stream": "...", "data": <event>}`), with keys
  `e,E,s,t,p,q,T,m,M`; the server may also send a `serverShutdown` event;
- REST `GET /api/v3/historicalTrades`, a list of
  `{"id","price","qty","quoteQty","time","isBuyerMaker","isBestMatch"}`.

Prices and quantities are strings: they decode to exact Decimals. Times are
milliseconds and become microseconds, like a tape's. A frame that is not one
of these decodes to `Malformed` (never an exception): one bad frame must not
stop a stream.
"""

from decimal import Decimal
from typing import Annotated

import msgspec

from naive_mp import wire

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


def _check_price(price: Decimal) -> None:
    # msgspec accepts "NaN", "Infinity" and negatives as Decimals: none is a trade's price.
    if not price.is_finite() or price <= 0:
        raise ValueError(f"price must be a positive number, got {price}")


class TradeEvent(msgspec.Struct, frozen=True, tag_field="e", tag="trade"):
    """One `<symbol>@trade` event. Only s, t, p and T are required: the others
    are not used, and a field Binance drops one day must not make every trade malformed."""

    s: str  # symbol, upper case
    t: NonNegative  # trade id, consecutive per symbol
    p: Decimal  # price
    T: NonNegative  # trade time, ms
    E: int = 0  # event time, ms
    q: Decimal = Decimal(0)  # quantity
    m: bool = False  # the buyer is the maker
    M: bool = True  # ignore (Binance: "best price match")

    def __post_init__(self):
        _check_price(self.p)

    @property
    def time_us(self) -> int:
        return self.T * 1000

    def trade(self) -> wire.Trade:
        """What the streamer publishes."""
        return wire.Trade(self.t, self.p, self.T * 1000, self.q, self.m)


class ServerShutdown(msgspec.Struct, frozen=True, tag_field="e", tag="serverShutdown"):
    """The server is about to go down: connect again elsewhere, soon."""

    E: int = 0


Event = TradeEvent | ServerShutdown


class Combined(msgspec.Struct, frozen=True):
    """A combined stream's envelope."""

    stream: str
    data: Event


class Malformed(msgspec.Struct, frozen=True):
    """A frame that is none of the above: what was wrong, and its start."""

    error: str
    frame: str


class RestTrade(msgspec.Struct, frozen=True,
                rename={"trade_id": "id", "time_ms": "time", "buyer_maker": "isBuyerMaker"}):
    """One trade of `historicalTrades` (quoteQty and isBestMatch are not needed)."""

    trade_id: NonNegative
    price: Decimal
    time_ms: NonNegative
    qty: Decimal = Decimal(0)
    buyer_maker: bool = False

    def __post_init__(self):
        _check_price(self.price)

    def trade(self) -> wire.Trade:
        return wire.Trade(self.trade_id, self.price, self.time_ms * 1000, self.qty, self.buyer_maker)


_combined = msgspec.json.Decoder(Combined)
_raw = msgspec.json.Decoder(Event)


def decode_frame(frame: str | bytes) -> TradeEvent | ServerShutdown | Malformed:
    """The event a websocket frame carries, combined or raw, or `Malformed`."""
    try:
        return _combined.decode(frame).data
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        error = str(exc)
    try:
        # a raw stream's event, or an event a combined stream sends unwrapped
        return _raw.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return Malformed(error=error, frame=_excerpt(frame))


def _excerpt(frame, limit: int = 120) -> str:
    text = frame.decode(errors="replace") if isinstance(frame, (bytes, bytearray)) else str(frame)
    return text if len(text) <= limit else text[:limit] + "..."


def rest_trades(payload) -> list[RestTrade]:
    """historicalTrades' parsed JSON as Structs (msgspec.ValidationError if it is not that)."""
    return msgspec.convert(payload, list[RestTrade])
