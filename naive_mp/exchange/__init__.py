"""Talking to the exchange (Binance): live trades, filters.

- binance_frames: the trade stream's frames and REST trades decoded by msgspec (pure).
- binance_stream: `LiveTrades`, the live trade source the streamer polls.
- binance_info: exchangeInfo -> core.settings.Filters, and their cache file.
"""
