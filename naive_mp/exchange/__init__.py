"""The exchange seam: what the gateway and the streamer use, paper or Binance.

- `Exchange`: an order book the gateway drives (place, find, cancel, the trades
  that fill). paper.PaperExchange is one (pure and deterministic, also the
  backtester's); Binance orders arrive with `--live`.
- `TradeSource`: trades the streamer publishes, per symbol in id order, through a
  descriptor it polls. binance_stream.LiveTrades is one; tapes (naive_mp.data.tapes)
  are replayed by the streamer itself, paced or in lockstep.
- errors: the exchange's refusals and our own errors, distinct types in one place.

Modules: paper (the paper exchange); binance_frames (the trade stream's frames and
REST trades decoded by msgspec, pure); binance_stream (`LiveTrades`; binance_feed is
its asyncio side, binance_socket python-binance's websocket as it uses it);
binance_info (exchangeInfo -> core.settings.Filters, and their cache file);
endpoints (Binance's endpoints as settings; binance_urls: as python-binance wants them).
"""

from decimal import Decimal
from typing import Protocol

from naive_mp.core.messages import OrderFilled, PlaceOrder


class Exchange(Protocol):
    """An order book of LIMIT GTC orders, idempotent by client order id."""

    def place(self, command: PlaceOrder, trade_id: int): ...

    def find(self, client_order_id: str): ...

    def cancel(self, client_order_id: str): ...

    def on_trade(self, symbol: str, trade_id: int, price: Decimal) -> list[OrderFilled]: ...


class TradeSource(Protocol):
    """Trades per symbol, in id order, none twice, none missing; ready when `fileno()` is readable."""

    def start(self) -> None: ...

    def fileno(self) -> int: ...

    def take(self) -> dict: ...

    def close(self) -> None: ...
