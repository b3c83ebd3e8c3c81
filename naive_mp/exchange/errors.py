"""The exchange's refusals and our own errors, as distinct types in one place.

- `ExchangeRefused`: the exchange answered no (Binance's code and message). A
  normal event for the core: a trader that hears it acts by strategy.md.
- `ExchangeUnreachable`: no answer came (network, timeout, 5xx, rate limit): the
  outcome is unknown, so nothing may be assumed placed or not.
- `ExchangeInfoError`: an answer we cannot use (an unknown or non-trading symbol,
  filters missing): said to the person, who must change the command.
- `LiveTradesError`: a bug met in our live feed: the streamer crashes and is restarted.
"""


class ExchangeRefused(Exception):
    """The exchange said no: a normal answer for the core, not a bug."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class ExchangeInfoError(Exception):
    """The filters could not be had; the message says why and what to do."""


class ExchangeUnreachable(ExchangeInfoError):
    """Binance did not answer (network, timeout, 5xx, rate limit): the cache may stand in."""


class LiveTradesError(RuntimeError):
    """The live trade feed stopped on an unexpected error (a bug): the streamer should crash and be restarted."""
