"""Where Binance is: REST, the trade stream and the WS-API, as settings (cli.md, "Binance endpoints").

Tests, a mirror or the spot test network work without code changes: the
config file's `[binance]` table (`api_url`, `stream_url`, `ws_api_url`),
then `NAIVE_MP_BINANCE_API_URL`, `NAIVE_MP_BINANCE_STREAM_URL` and
`NAIVE_MP_BINANCE_WS_API_URL`, override the defaults (production, or the
test network's with `testnet`).
"""

import os
from urllib.parse import urlparse

import msgspec


class Endpoints(msgspec.Struct, frozen=True, kw_only=True):
    api_url: str
    stream_url: str
    ws_api_url: str


PRODUCTION = Endpoints(api_url="https://api.binance.com", stream_url="wss://stream.binance.com:9443",
                       ws_api_url="wss://ws-api.binance.com:443/ws-api/v3")
TESTNET = Endpoints(api_url="https://testnet.binance.vision", stream_url="wss://stream.testnet.binance.vision",
                    ws_api_url="wss://ws-api.testnet.binance.vision/ws-api/v3")
SCHEMES = {"api_url": ("http", "https"), "stream_url": ("ws", "wss"), "ws_api_url": ("ws", "wss")}
ENV = {key: f"NAIVE_MP_BINANCE_{key.upper()}" for key in SCHEMES}


class EndpointError(ValueError):
    """An endpoint setting that is not a URL of the right kind; the message names it."""


def endpoints(table: dict | None = None, environ=os.environ, testnet: bool = False) -> Endpoints:
    """The defaults, then the config file's [binance] table, then the environment; each URL checked."""
    values = msgspec.structs.asdict(TESTNET if testnet else PRODUCTION)
    table = table or {}
    unknown = set(table) - set(SCHEMES)
    if unknown:
        raise EndpointError(f"[binance]: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(SCHEMES)})")
    for key, given in ((k, table.get(k)) for k in SCHEMES):
        if given is not None:
            values[key] = _checked(f"[binance] {key}", key, given)
    for key, name in ENV.items():
        if environ.get(name):
            values[key] = _checked(name, key, environ[name])
    return Endpoints(**values)


def _checked(where: str, key: str, url) -> str:
    if not isinstance(url, str):
        raise EndpointError(f"{where}: expected a URL string, got {url!r}")
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES[key] or not parsed.netloc:
        raise EndpointError(f"{where}: {url!r} is not a {' or '.join(SCHEMES[key])} URL")
    return url.rstrip("/")
