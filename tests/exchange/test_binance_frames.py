"""Decoding Binance trade frames and REST trades (pure), on real payloads."""

import json
import logging
import time
from decimal import Decimal

import pytest

from naive_mp import wire
from naive_mp.exchange.binance_socket import Throttle, backoff_delay
from naive_mp.exchange.binance_frames import Malformed, ServerShutdown, TradeEvent, decode_frame, rest_trades
from naive_mp.exchange.binance_urls import rest_root, stream_root
from naive_mp.exchange.endpoints import PRODUCTION, TESTNET


def test_every_real_combined_frame_decodes(binance_data):
    lines = binance_data("ws/btcusdt-trade-stream-2024-08-08.jsonl").read_text().splitlines()
    assert len(lines) == 3000
    for line in lines:
        data = json.loads(line)["data"]
        event = decode_frame(line)
        assert type(event) is TradeEvent
        assert event.trade() == wire.Trade(data["t"], Decimal(data["p"]), data["T"] * 1000, Decimal(data["q"]),
                                           data["m"])
        assert (event.s, event.q, event.m) == ("BTCUSDT", Decimal(data["q"]), data["m"])


def test_documented_raw_trade_decodes(binance_data):
    event = decode_frame(binance_data("ws/ws_trade.json").read_bytes())
    assert event == TradeEvent(s="BNBBTC", t=12345, p=Decimal("0.001"), T=1672515782136, E=1672515782136,
                               q=Decimal("100"), m=True, M=True)
    assert event.time_us == 1672515782136000
    assert str(event.p) == "0.001"  # exact, as sent


@pytest.mark.parametrize("frame", [
    '{"e":"serverShutdown","E":1770123456789}',
    '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}',
])
def test_server_shutdown_raw_or_wrapped(frame):
    assert decode_frame(frame) == ServerShutdown(E=1770123456789)


TRADE = {"e": "trade", "E": 2, "s": "BTCUSDT", "t": 7, "p": "1.5", "q": "2", "T": 1, "m": True, "M": True}


def _frame(**changes):
    data = {k: v for k, v in {**TRADE, **changes}.items() if v is not None}
    return json.dumps({"stream": "btcusdt@trade", "data": data})


@pytest.mark.parametrize("frame, why", [
    ("not json", "malformed"),
    (b"\x00\xff binary", "malformed"),
    ("[]", "Expected `object`"),
    ('{"result":null,"id":1}', "missing required field `stream`"),
    (_frame(p="abc"), "decimal"),
    (_frame(p="-1"), "positive"),
    (_frame(p="NaN"), "positive"),
    (_frame(t=-5), ">= 0"),
    (_frame(t=None), "`t`"),
    (_frame(T="soon"), "Expected `int`"),
    (_frame(e="kline"), "kline"),
])
def test_malformed_frames(frame, why):
    event = decode_frame(frame)
    assert type(event) is Malformed
    assert why in event.error


def test_optional_fields_may_go():
    event = decode_frame(_frame(E=None, q=None, m=None, M=None))
    assert event.trade() == wire.Trade(7, Decimal("1.5"), 1000, Decimal(0), False)


def test_rest_trades(binance_data):
    trades = rest_trades(json.loads(binance_data("rest/trades.json").read_text()))
    assert [t.trade() for t in trades] == [wire.Trade(28457, Decimal("4.00000100"), 1499865549590000,
                                                      Decimal("12.00000000"), True)]
    with pytest.raises(Exception):
        rest_trades([{"id": 1, "price": "0", "time": 5}])


def test_backoff_grows_with_jitter_and_a_cap():
    assert backoff_delay(0, 0.5, 30, rand=lambda: 0.0) == 0.25
    assert backoff_delay(0, 0.5, 30, rand=lambda: 1.0) == 0.5
    assert backoff_delay(3, 0.5, 30, rand=lambda: 1.0) == 4.0
    assert backoff_delay(100, 0.5, 30, rand=lambda: 1.0) == 30


@pytest.mark.parametrize("url, root", [
    ("https://api.binance.com", "https://api.binance.com/api"),
    ("https://api.binance.com/", "https://api.binance.com/api"),
    ("https://api.binance.com/api", "https://api.binance.com/api"),
])
def test_rest_root(url, root):
    assert rest_root(url) == root


@pytest.mark.parametrize("url, root", [
    ("wss://stream.binance.com:9443", "wss://stream.binance.com:9443/"),
    ("wss://stream.binance.com:9443/ws", "wss://stream.binance.com:9443/"),
    ("wss://stream.testnet.binance.vision/ws/", "wss://stream.testnet.binance.vision/"),
    ("ws://127.0.0.1:8080/stream", "ws://127.0.0.1:8080/"),
])
def test_stream_root(url, root):
    assert stream_root(url) == root


def test_the_endpoint_settings_fit_python_binance():
    for endpoints in (PRODUCTION, TESTNET):
        assert rest_root(endpoints.api_url) == endpoints.api_url + "/api"
        assert stream_root(endpoints.stream_url) == endpoints.stream_url + "/"


def test_stream_root_needs_a_websocket_scheme():
    with pytest.raises(ValueError, match="ws://"):
        stream_root("https://stream.binance.com")


def test_throttle_lets_one_line_through_per_period(caplog):
    throttle = Throttle(period_s=0.2)
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            throttle.log(logging.WARNING, "bad frame %d", i)
        time.sleep(0.25)
        throttle.log(logging.WARNING, "bad frame %d", 5)
    assert [r.getMessage() for r in caplog.records] == ["bad frame 0", "bad frame 5 (and 4 more since)"]
