"""Talking to the exchange (Binance): live trades, filters.

- binance_frames: the trade stream's frames and REST trades decoded by msgspec (pure).
- binance_stream: `LiveTrades`, the live trade source the streamer polls
  (binance_feed: its asyncio side; binance_socket: python-binance's websocket as it uses it).
- binance_info: exchangeInfo -> core.settings.Filters, and their cache file.
- endpoints: Binance's endpoints as settings; binance_urls: those URLs as python-binance wants them.
"""
