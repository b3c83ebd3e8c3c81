"""Binance's endpoints: production defaults, and base URLs as settings give them.

The settings ([binance] api_url / stream_url, NAIVE_MP_BINANCE_API_URL /
NAIVE_MP_BINANCE_STREAM_URL) may be written with or without the path
python-binance adds itself; these functions turn them into what it expects.
"""

import re

API_URL = "https://api.binance.com"
STREAM_URL = "wss://stream.binance.com:9443"
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
