"""Base URLs as the settings give them (naive_mp.exchange.endpoints), made into what python-binance expects.

The settings ([binance] api_url / stream_url, NAIVE_MP_BINANCE_API_URL /
NAIVE_MP_BINANCE_STREAM_URL) may be written with or without the path
python-binance adds itself ("/api"; "/ws" or "/stream").
"""

import re

from naive_mp.exchange.endpoints import PRODUCTION

API_URL = PRODUCTION.api_url
STREAM_URL = PRODUCTION.stream_url
SYMBOL = re.compile(r"[A-Z0-9]{2,20}")


def rest_root(url: str) -> str:
    """python-binance's API_URL for a REST base URL given with or without its "/api"."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"REST URL must start with http:// or https://, got {url!r}")
    return url if url.endswith("/api") else url + "/api"


def stream_root(url: str) -> str:
    """The stream server's root ("wss://host:port/"), from a URL given with or without "/ws" or "/stream"."""
    url = url.rstrip("/")
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"stream URL must start with ws:// or wss://, got {url!r}")
    for tail in ("/ws", "/stream"):
        if url.endswith(tail):
            url = url[: -len(tail)]
    return url + "/"
