"""python-binance's websocket as the live feed (binance_feed) uses it, and two small helpers.

`TradeSocket` is python-binance's ReconnectingWebsocket with its frames, errors
and end reported to an owner instead of queued; `backoff_delay` and
`Throttle` pace retries and log lines.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable

from binance.ws.constants import WSListenerState
from binance.ws.reconnecting_websocket import ReconnectingWebsocket

log = logging.getLogger("naive_mp.exchange.binance_stream")


def backoff_delay(attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential back-off with jitter: between half and all of min(max_s, base_s * 2**attempt)."""
    cap = min(max_s, base_s * 2 ** min(attempt, 32))
    return cap * (0.5 + 0.5 * rand())


class Throttle:
    """Lets a log line through at most once per `period_s`, saying how many it held back."""

    def __init__(self, period_s: float = 10.0):
        self.period_s = period_s
        self.next_at = 0.0
        self.held = 0

    def log(self, level: int, message: str, *args) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.held += 1
            return
        if self.held:
            message, args = message + " (and %d more since)", (*args, self.held)
        log.log(level, message, *args)
        self.held, self.next_at = 0, now + self.period_s


class _Quiet(logging.LoggerAdapter):
    """python-binance logs every closed connection as an ERROR; the feed reports each replacement
    itself, counted and with its reason, so python-binance's lines go to DEBUG."""

    def log(self, level, msg, *args, **kwargs):
        super().log(min(level, logging.DEBUG), msg, *args, **kwargs)


class TradeSocket(ReconnectingWebsocket):
    """python-binance's websocket, reporting to its owner (a connection of the feed) instead of queueing.

    MAX_RECONNECTS = 0: when the connection drops, the read loop ends at once
    and the feed builds a new socket with its own back-off (python-binance's
    waits at least 1 s, and gives up for good after 5 attempts).
    """

    MAX_RECONNECTS = 0

    def __init__(self, owner, url: str, path: str, open_timeout: float):
        super().__init__(url=url, path=path, prefix="stream?", open_timeout=open_timeout)
        self._owner = owner
        self._log = _Quiet(self._log, None)

    def _handle_message(self, evt):
        self._owner.on_frame(evt)
        return None  # nothing for python-binance's queue: it stays empty and cannot overflow

    async def _propagate_error(self, error_msg: dict):
        self._owner.on_error(error_msg)

    async def _read_loop(self):
        try:
            await super()._read_loop()
        finally:
            self._owner.on_end()

    async def close(self):
        # Without this, the read loop notices EXITING only when its recv() times out (10 s).
        self.ws_state = WSListenerState.EXITING
        if self.ws is not None:
            await self.ws.close()
        await super().close()
