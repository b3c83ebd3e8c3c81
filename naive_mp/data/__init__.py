"""Market data: getting tapes (Binance's public archive) onto this machine."""
