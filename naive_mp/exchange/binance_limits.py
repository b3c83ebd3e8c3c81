"""One limiter for every signed request of the gateway: Binance's weights, Retry-After and bans.

Pure: the caller passes the time in. python-binance tracks nothing, so the
answers' headers feed it: `X-MBX-USED-WEIGHT-1M` (request weight used this
minute) and `X-MBX-ORDER-COUNT-10S` (orders this 10 s). Close to a limit we
wait for the window to roll; a 429 pauses everything for its `Retry-After`;
a 418 (an IP ban, for going on after 429s) stops everything until it ends.
All the gateway's REST goes through one worker that asks `wait_s` first, so
one limiter slows every trader at once.
"""

from dataclasses import dataclass, field

# Binance's spot defaults (exchangeInfo.rateLimits); `from_exchange_info` reads the real ones.
WEIGHT_PER_MINUTE = 6000
ORDERS_PER_10S = 100
HEADROOM = 0.9  # stop short of the limit: other programs on the same IP count too


@dataclass
class Limiter:
    weight_per_minute: int = WEIGHT_PER_MINUTE
    orders_per_10s: int = ORDERS_PER_10S
    paused_until: float = 0.0  # Retry-After, or a window nearly used up
    banned_until: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def wait_s(self, now: float) -> float:
        """How long to wait before the next request (0: go)."""
        return max(0.0, self.paused_until - now, self.banned_until - now)

    def banned(self, now: float) -> bool:
        return now < self.banned_until

    def note_headers(self, headers, now: float) -> None:
        """After every answer: pause until the window rolls when it is nearly used up."""
        weight = _int(headers, "X-MBX-USED-WEIGHT-1M")
        if weight is not None and weight >= self.weight_per_minute * HEADROOM:
            self._pause(now + 60 - now % 60, f"request weight {weight} of {self.weight_per_minute} a minute")
        orders = _int(headers, "X-MBX-ORDER-COUNT-10S")
        if orders is not None and orders >= self.orders_per_10s * HEADROOM:
            self._pause(now + 10 - now % 10, f"{orders} orders of {self.orders_per_10s} in 10 s")

    def note_retry_after(self, headers, now: float, default_s: float = 1.0) -> float:
        """A 429: everything waits `Retry-After` seconds. Returns the wait."""
        wait = _int(headers, "Retry-After")
        wait = float(wait) if wait is not None and wait > 0 else default_s
        self._pause(now + wait, f"429 Too Many Requests, Retry-After {wait:g} s")
        return wait

    def note_ban(self, headers, now: float, default_s: float = 120.0) -> float:
        """A 418: the IP is banned; nothing goes out until it ends. Returns its length."""
        wait = _int(headers, "Retry-After")
        wait = float(wait) if wait is not None and wait > 0 else default_s
        self.banned_until = max(self.banned_until, now + wait)
        return wait

    def _pause(self, until: float, why: str) -> None:
        if until > self.paused_until:
            self.paused_until = until
            self.reasons.append(why)

    @classmethod
    def from_exchange_info(cls, info: dict) -> "Limiter":
        """The limits exchangeInfo states (REQUEST_WEIGHT per minute, ORDERS per 10 s)."""
        limiter = cls()
        for limit in info.get("rateLimits") or ():
            seconds = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}.get(limit.get("interval"), 0)
            span = seconds * int(limit.get("intervalNum") or 1)
            if limit.get("rateLimitType") == "REQUEST_WEIGHT" and span == 60:
                limiter.weight_per_minute = int(limit["limit"])
            elif limit.get("rateLimitType") == "ORDERS" and span == 10:
                limiter.orders_per_10s = int(limit["limit"])
        return limiter


def _int(headers, name: str) -> int | None:
    try:
        value = headers.get(name) if headers is not None else None
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
