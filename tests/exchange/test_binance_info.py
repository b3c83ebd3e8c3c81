"""Exchange filters through python-binance's Client, from real exchangeInfo payloads served by the fake."""

import copy
import json
import logging
import socket
import time
from decimal import Decimal

import pytest

from fakebinance import FakeBinance
from naive_mp.core.settings import Filters
from naive_mp.exchange.binance_info import (ExchangeInfoError, ExchangeUnreachable, exchange_filters,
                                            fetch_filters, filters_from_info, load_filters, save_filters)

XRP_2021 = Filters(tick_size=Decimal("0.0001"), step_size=Decimal("1"), min_qty=Decimal("1"), min_notional=Decimal("10"))
BTC_2021 = Filters(tick_size=Decimal("0.01"), step_size=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                   min_notional=Decimal("10"))


@pytest.fixture
def info_2021(binance_data):
    return json.loads(binance_data("rest/exchangeInfo_XRPUSDT_BTCUSDT_ETHUSDT_2021-10-12.json").read_text())


@pytest.fixture
def info_2022(binance_data):
    return json.loads(binance_data("rest/exchangeInfo_BTCUSDT_2022-12-11.json").read_text())


@pytest.fixture
def fake(info_2021):
    with FakeBinance(exchange_info=info_2021) as fake:
        yield fake


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_filters_of_several_symbols_in_one_call(fake):
    filters = fetch_filters(["XRPUSDT", "BTCUSDT"], api_url=fake.api_url)
    assert filters == {"XRPUSDT": XRP_2021, "BTCUSDT": BTC_2021}
    assert fake.rest_calls["exchangeInfo"] == 1


def test_the_2022_payload(info_2022):
    with FakeBinance(exchange_info=info_2022) as fake:
        assert fetch_filters(["BTCUSDT"], api_url=fake.api_url + "/api/") == {"BTCUSDT": BTC_2021}


def test_notional_is_preferred_to_the_older_min_notional(info_2022, binance_data):
    notional = json.loads(binance_data("rest/filters_examples.json").read_text())["NOTIONAL"]
    entry = copy.deepcopy(info_2022["symbols"][0])
    entry["filters"].append(dict(notional, minNotional="5.00000000"))
    assert filters_from_info({"symbols": [entry]}, ["BTCUSDT"])["BTCUSDT"].min_notional == Decimal("5")
    entry["filters"] = [f for f in entry["filters"] if f["filterType"] != "MIN_NOTIONAL"]
    assert filters_from_info({"symbols": [entry]}, ["BTCUSDT"])["BTCUSDT"].min_notional == Decimal("5")


def test_unknown_symbols_are_named(fake):
    with pytest.raises(ExchangeInfoError, match=r"unknown symbols on Binance: FOOUSDT, BARBTC$"):
        fetch_filters(["XRPUSDT", "FOOUSDT", "BARBTC"], api_url=fake.api_url)


def test_a_symbol_not_trading_is_named(info_2021):
    info = copy.deepcopy(info_2021)
    info["symbols"][2]["status"] = "BREAK"
    with FakeBinance(exchange_info=info) as fake:
        with pytest.raises(ExchangeInfoError, match=r"XRPUSDT is not trading on Binance \(status BREAK\)"):
            fetch_filters(["BTCUSDT", "XRPUSDT"], api_url=fake.api_url)


@pytest.mark.parametrize("drop, problem", [
    ("PRICE_FILTER", "lacks PRICE_FILTER"),
    ("LOT_SIZE", "lacks LOT_SIZE"),
])
def test_a_missing_filter_is_named(info_2021, drop, problem):
    entry = copy.deepcopy(info_2021["symbols"][0])
    entry["filters"] = [f for f in entry["filters"] if f["filterType"] != drop]
    with pytest.raises(ExchangeInfoError, match=f"BTCUSDT: exchangeInfo {problem}"):
        filters_from_info({"symbols": [entry]}, ["BTCUSDT"])


def test_a_zero_tick_size_is_refused(info_2021):
    entry = copy.deepcopy(info_2021["symbols"][0])
    entry["filters"][0]["tickSize"] = "0.00000000"
    with pytest.raises(ExchangeInfoError, match="BTCUSDT: unusable filters in exchangeInfo: tick_size"):
        filters_from_info({"symbols": [entry]}, ["BTCUSDT"])


def test_nobody_listening_is_a_clear_error():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ExchangeUnreachable, match=f"cannot get exchangeInfo from {url}: cannot connect") as caught:
        fetch_filters(["XRPUSDT"], api_url=url)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained traceback


def test_a_slow_server_times_out_quickly(fake):
    fake.rest_delay_s = 3.0
    began = time.monotonic()
    with pytest.raises(ExchangeUnreachable, match="no answer within 0.3 s"):
        fetch_filters(["XRPUSDT"], api_url=fake.api_url, timeout_s=0.3)
    assert time.monotonic() - began < 2


@pytest.mark.parametrize("status", [503, 429])
def test_binance_unavailable(fake, status):
    fake.rest_fail(1, status=status)
    with pytest.raises(ExchangeUnreachable, match=f"answered HTTP {status} to exchangeInfo"):
        fetch_filters(["XRPUSDT"], api_url=fake.api_url)


def test_cache_round_trip_is_atomic_and_merges(tmp_path):
    cache = tmp_path / "state" / "filters.json"
    save_filters(cache, {"XRPUSDT": XRP_2021}, source="https://api.binance.com/api")
    save_filters(cache, {"BTCUSDT": BTC_2021})
    assert load_filters(cache) == {"XRPUSDT": XRP_2021, "BTCUSDT": BTC_2021}
    assert sorted(p.name for p in cache.parent.iterdir()) == ["filters.json"]  # no temporary file left
    document = json.loads(cache.read_text())
    assert document["symbols"]["BTCUSDT"]["filters"]["step_size"] == "0.00001"  # not 1E-5
    assert document["symbols"]["XRPUSDT"]["source"] == "https://api.binance.com/api"


def test_no_cache_file_is_empty(tmp_path):
    assert load_filters(tmp_path / "none.json") == {}


@pytest.mark.parametrize("text", ["{not json", '{"version": 1, "symbols": {"X": {"filters": {"tick_size": "0"}}}}',
                                  '{"version": 9, "symbols": {}}'])
def test_a_broken_cache_is_named(tmp_path, text):
    cache = tmp_path / "filters.json"
    cache.write_text(text)
    with pytest.raises(ExchangeInfoError, match=f"the filters cache {cache}"):
        load_filters(cache)


def test_ask_then_run_offline(tmp_path, fake):
    cache = tmp_path / "filters.json"
    assert exchange_filters(["XRPUSDT"], cache=cache, api_url=fake.api_url) == {"XRPUSDT": XRP_2021}
    fake.stop()
    calls = fake.rest_calls["exchangeInfo"]
    assert exchange_filters(["XRPUSDT"], cache=cache, offline=True) == {"XRPUSDT": XRP_2021}
    with pytest.raises(ExchangeInfoError, match="no cached filters for BTCUSDT in"):
        exchange_filters(["BTCUSDT", "XRPUSDT"], cache=cache, offline=True)
    assert fake.rest_calls["exchangeInfo"] == calls
    fake.start()  # for the fixture's stop


def test_unreachable_falls_back_to_a_complete_cache(tmp_path, caplog):
    cache = tmp_path / "filters.json"
    save_filters(cache, {"XRPUSDT": XRP_2021})
    url = f"http://127.0.0.1:{_free_port()}"
    with caplog.at_level(logging.WARNING):
        assert exchange_filters(["XRPUSDT"], cache=cache, api_url=url) == {"XRPUSDT": XRP_2021}
    assert "using the cached filters" in caplog.text
    with pytest.raises(ExchangeUnreachable):
        exchange_filters(["XRPUSDT", "BTCUSDT"], cache=cache, api_url=url)


def test_a_refusal_does_not_fall_back(tmp_path, fake):
    cache = tmp_path / "filters.json"
    save_filters(cache, {"FOOUSDT": XRP_2021})
    with pytest.raises(ExchangeInfoError, match="unknown symbol on Binance: FOOUSDT"):
        exchange_filters(["FOOUSDT"], cache=cache, api_url=fake.api_url)
