"""The fake Binance's spot account, checked with the real python-binance Client and a websockets WS-API client."""

import contextlib
import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests
import websockets
from binance import Client
from binance.exceptions import BinanceAPIException
from websockets.sync.client import connect

from fakebinance import FakeBinance, FakeTrade, wait_until

INFO = {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": [
    {"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.00010000", "maxPrice": "1000.00000000",
         "tickSize": "0.00010000"},
        {"filterType": "LOT_SIZE", "minQty": "0.10000000", "maxQty": "900000.00000000", "stepSize": "0.10000000"},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}]}]}


def trade(id_: int, price: str, qty: str) -> FakeTrade:
    return FakeTrade(id_, price, qty, 1_723_161_255_000 + id_)


def make_client(fake: FakeBinance, key: str = "fake-key", secret: str = "fake-secret") -> Client:
    client = Client(key, secret, ping=False, requests_params={"timeout": 2})  # ping=False: no call at init
    client.API_URL = fake.api_url + "/api"
    return client


@pytest.fixture
def fake():
    with FakeBinance({"XRPUSDT": []}, INFO, balances={"USDT": "1000", "XRP": "100"}) as fake:
        yield fake


@pytest.fixture
def client(fake):
    client = make_client(fake)
    yield client
    client.close_connection()


def buy(client, client_id: str, qty: str = "20.0", price: str = "0.4307", side: str = "BUY") -> dict:
    return client.create_order(symbol="XRPUSDT", side=side, type="LIMIT", timeInForce="GTC", quantity=qty,
                               price=price, newClientOrderId=client_id)


def refused(call, *args, **kwargs) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as caught:
        call(*args, **kwargs)
    return caught.value


@contextlib.contextmanager
def subscribed(fake: FakeBinance, secret: str = "fake-secret"):
    """A WS-API connection and the answer to its userDataStream.subscribe.signature."""
    with connect(fake.ws_api_url, open_timeout=2, close_timeout=1) as ws:
        yield ws, subscribe(ws, secret)


def subscribe(ws, secret: str = "fake-secret") -> dict:
    params = {"apiKey": "fake-key", "timestamp": int(time.time() * 1000)}
    params["signature"] = hmac.new(secret.encode(), urlencode(sorted(params.items())).encode(),
                                   hashlib.sha256).hexdigest()
    ws.send(json.dumps({"id": "sub-1", "method": "userDataStream.subscribe.signature", "params": params}))
    return json.loads(ws.recv(timeout=2))


def reports(ws, n: int) -> list[dict]:
    """The next `n` executionReports on `ws` (other events skipped)."""
    found = []
    while len(found) < n:
        message = json.loads(ws.recv(timeout=2))
        if message["event"]["e"] == "executionReport":
            found.append(message["event"])
    return found


def test_a_signed_order_is_booked_and_a_wrong_secret_or_key_is_refused(fake, client):
    placed = buy(client, "grid-1")
    assert placed | {"transactTime": 0, "workingTime": 0} == {
        "symbol": "XRPUSDT", "orderId": placed["orderId"], "orderListId": -1, "clientOrderId": "grid-1",
        "transactTime": 0, "price": "0.43070000", "origQty": "20.00000000", "executedQty": "0.00000000",
        "cummulativeQuoteQty": "0.00000000", "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
        "workingTime": 0, "fills": [], "selfTradePreventionMode": "EXPIRE_MAKER"}
    assert client.response.headers["X-MBX-ORDER-COUNT-1D"] == "1"
    assert client.get_order(symbol="XRPUSDT", origClientOrderId="grid-1")["status"] == "NEW"
    assert client.get_order(symbol="XRPUSDT", orderId=placed["orderId"])["clientOrderId"] == "grid-1"
    assert fake.account_balances()["USDT"] == (Decimal("991.386"), Decimal("8.614"))
    assert [o["clientOrderId"] for o in client.get_open_orders(symbol="XRPUSDT")] == ["grid-1"]

    wrong = make_client(fake, secret="not-the-secret")
    caught = refused(buy, wrong, "grid-2")
    assert (caught.status_code, caught.code, caught.message) == (400, -1022, "Signature for this request is not valid.")
    caught = refused(make_client(fake, key="not-the-key").get_account)
    assert (caught.status_code, caught.code) == (401, -2015)
    assert [o["clientOrderId"] for o in fake.orders()] == ["grid-1"] and fake.order_posts == 2


@pytest.mark.parametrize("qty, price, failure", [
    ("20.0", "0.43071", "PRICE_FILTER"),
    ("20.05", "0.4307", "LOT_SIZE"),
    ("0.05", "0.4307", "LOT_SIZE"),
    ("10.0", "0.4307", "NOTIONAL"),
])
def test_filters(fake, client, qty, price, failure):
    caught = refused(buy, client, "x", qty, price)
    assert (caught.status_code, caught.code, caught.message) == (400, -1013, f"Filter failure: {failure}")
    assert fake.orders() == []


def test_duplicate_open_client_id_and_insufficient_balance(fake, client):
    buy(client, "grid-1")
    caught = refused(buy, client, "grid-1")
    assert (caught.code, caught.message) == (-2010, "Duplicate order sent.")
    client.cancel_order(symbol="XRPUSDT", origClientOrderId="grid-1")
    assert buy(client, "grid-1")["status"] == "NEW"  # the id of a closed order may be used again
    caught = refused(buy, client, "big", "3000.0", "0.5")
    assert (caught.code, caught.message) == (-2010, "Account has insufficient balance for requested action.")
    caught = refused(buy, client, "big", "100.1", "0.5", side="SELL")
    assert caught.code == -2010
    assert refused(client.get_order, symbol="XRPUSDT", origClientOrderId="nope").code == -2013
    assert refused(client.cancel_order, symbol="XRPUSDT", origClientOrderId="nope").code == -2011


def test_printed_trades_fill_at_the_order_price_with_exact_commissions(fake, client):
    buy(client, "b1", "20.0", "0.4307")
    buy(client, "s1", "12.0", "0.4500", side="SELL")
    fake.add_trades("XRPUSDT", [trade(1, "0.4400", "5"), trade(2, "0.4300", "1"), trade(3, "0.4600", "1")])
    fake.print_trades("XRPUSDT", 1)  # crosses neither
    assert fake.my_trades("XRPUSDT") == []
    fake.print_trades("XRPUSDT", 2)
    bought = client.get_order(symbol="XRPUSDT", origClientOrderId="b1")
    assert (bought["status"], bought["executedQty"], bought["cummulativeQuoteQty"]) == (
        "FILLED", "20.00000000", "8.61400000")
    mine = client.get_my_trades(symbol="XRPUSDT")
    fields = ("orderId", "price", "qty", "commission", "commissionAsset", "isBuyer")
    assert [tuple(t[f] for f in fields) for t in mine] == [
        (bought["orderId"], "0.43070000", "20.00000000", "0.02000000", "XRP", True),
        (mine[1]["orderId"], "0.45000000", "12.00000000", "0.00540000", "USDT", False)]
    assert mine[1]["id"] == mine[0]["id"] + 1
    assert client.get_my_trades(symbol="XRPUSDT", orderId=bought["orderId"]) == mine[:1]
    usdt = Decimal("1000") - Decimal("8.614") + Decimal("5.4") - Decimal("0.0054")  # bought, sold, commission
    assert fake.account_balances() == {"USDT": (usdt, 0), "XRP": (Decimal("100") - 12 + 20 - Decimal("0.02"), 0)}
    balances = {b["asset"]: b for b in client.get_account()["balances"]}
    assert balances["USDT"] == {"asset": "USDT", "free": "996.78060000", "locked": "0.00000000"}
    assert client.get_open_orders() == []


def test_partial_fills_over_two_trades_on_the_user_stream():
    with FakeBinance({"XRPUSDT": []}, INFO, balances={"USDT": "1000"}, partial=True) as fake, \
            subscribed(fake) as (ws, answer):
        assert answer == {"id": "sub-1", "status": 200, "result": {"subscriptionId": 0}, "rateLimits": []}
        assert fake.subscriptions() == 1
        client = make_client(fake)
        buy(client, "p1", "30.0", "0.4307")
        fake.add_trades("XRPUSDT", [trade(1, "0.4300", "20"), trade(2, "0.4307", "20")])
        fake.print_trades("XRPUSDT", 2)
        new, part, full = reports(ws, 3)
        assert (new["x"], new["X"], new["c"], new["C"], new["l"], new["N"], new["t"]) == (
            "NEW", "NEW", "p1", "", "0.00000000", None, -1)
        assert (part["x"], part["X"], part["l"], part["z"], part["L"], part["n"], part["N"], part["Z"]) == (
            "TRADE", "PARTIALLY_FILLED", "20.00000000", "20.00000000", "0.43070000", "0.02000000", "XRP", "8.61400000")
        assert (full["x"], full["X"], full["l"], full["z"], full["n"], full["t"]) == (
            "TRADE", "FILLED", "10.00000000", "30.00000000", "0.01000000", part["t"] + 1)
        assert {k for k in full} >= set("eEscSofqpPFgCxXrilzLnNTtIwmMOZYQWV")
        assert fake.account_balances()["XRP"] == (Decimal("29.97"), 0)
        ws.close()
        assert wait_until(lambda: fake.subscriptions() == 0)


def test_cancel_by_hand_pushes_canceled_with_the_original_id(fake, client):
    with subscribed(fake) as (ws, _):
        buy(client, "g7")
        fake.cancel_by_hand("g7")
        new, canceled = reports(ws, 2)
        assert (canceled["x"], canceled["X"], canceled["C"], canceled["i"]) == ("CANCELED", "CANCELED", "g7", new["i"])
        assert canceled["c"].startswith("web_")
        position = json.loads(ws.recv(timeout=2))["event"]
        assert position["e"] == "outboundAccountPosition" and position["B"] == [
            {"a": "USDT", "f": "1000.00000000", "l": "0.00000000"}]
    assert refused(client.cancel_order, symbol="XRPUSDT", origClientOrderId="g7").code == -2011


def test_fill_hook_fills_part_of_an_order(fake, client):
    buy(client, "h1", "20.0")
    fake.fill("h1", "5.0")
    assert fake.order("h1")["status"] == "PARTIALLY_FILLED" and fake.order("h1")["executedQty"] == "5.00000000"
    fake.fill("h1")
    assert fake.order("h1")["status"] == "FILLED" and fake.open_orders() == []
    assert [t["qty"] for t in fake.my_trades("XRPUSDT")] == ["5.00000000", "15.00000000"]


def test_a_lost_reply_books_the_order_and_may_hide_it_for_a_while(fake, client):
    fake.lose_reply()
    caught = refused(buy, client, "lost-1")
    assert (caught.status_code, caught.code) == (503, -1007)
    assert client.get_order(symbol="XRPUSDT", origClientOrderId="lost-1")["status"] == "NEW"

    fake.lose_reply(invisible_s=0.5)
    assert refused(buy, client, "lost-2").code == -1007
    assert fake.order("lost-2")["status"] == "NEW"
    assert refused(client.get_order, symbol="XRPUSDT", origClientOrderId="lost-2").code == -2013
    assert [o["clientOrderId"] for o in client.get_open_orders(symbol="XRPUSDT")] == ["lost-1"]
    time.sleep(0.55)
    assert client.get_order(symbol="XRPUSDT", origClientOrderId="lost-2")["status"] == "NEW"

    fake.lose_reply(mode="close")
    with pytest.raises(Exception) as closed:
        buy(client, "lost-3")
    assert not isinstance(closed.value, BinanceAPIException)
    assert fake.order("lost-3")["status"] == "NEW" and fake.order_posts == 3


def test_reject_next_books_nothing(fake, client):
    fake.reject_next(-1015, "Too many new orders; current limit is 100 orders per 10 SECOND.", status=429)
    caught = refused(buy, client, "r1")
    assert (caught.status_code, caught.code) == (429, -1015)
    assert caught.response.headers["X-MBX-ORDER-COUNT-10S"] == "1" and "Retry-After" in caught.response.headers
    assert fake.orders() == [] and buy(client, "r1")["status"] == "NEW"


def test_rate_limit_ban_and_weight(fake, client):
    client.get_account()
    first = int(client.response.headers["X-MBX-USED-WEIGHT-1M"])
    client.get_open_orders()
    assert int(client.response.headers["X-MBX-USED-WEIGHT-1M"]) > first
    fake.rate_limit(2, retry_after=7)
    for _ in range(2):
        caught = refused(client.get_account)
        assert (caught.status_code, caught.code) == (429, -1003)
        assert caught.response.headers["Retry-After"] == "7"
    assert client.get_account()["canTrade"] is True
    fake.ban(0.3)
    caught = refused(buy, client, "b1")
    assert (caught.status_code, caught.code) == (418, -1003) and "banned until" in caught.message
    assert int(caught.response.headers["Retry-After"]) >= 1
    time.sleep(0.35)
    assert buy(client, "b1")["status"] == "NEW"


def test_a_skewed_clock_refuses_until_the_client_resyncs(fake, client):
    fake.skew_clock(30_000)
    caught = refused(client.get_account)
    assert (caught.status_code, caught.code) == (400, -1021)
    client.timestamp_offset = client.get_server_time()["serverTime"] - int(time.time() * 1000)
    assert client.get_account()["accountType"] == "SPOT"


def test_user_stream_auth_ping_time_and_unsubscribe(fake):
    with subscribed(fake, secret="wrong") as (ws, answer):
        assert answer["status"] == 400 and answer["error"] == {"code": -1022,
                                                               "msg": "Signature for this request is not valid."}
        ws.send(json.dumps({"id": 2, "method": "ping", "params": {}}))
        assert json.loads(ws.recv(timeout=2)) == {"id": 2, "status": 200, "result": {}, "rateLimits": []}
        ws.send(json.dumps({"id": 3, "method": "time"}))
        assert json.loads(ws.recv(timeout=2))["result"]["serverTime"] > 1_700_000_000_000
    with subscribed(fake) as (ws, answer):
        assert fake.subscriptions() == 1 and fake.subscribes_total == 1
        ws.send(json.dumps({"id": 4, "method": "userDataStream.unsubscribe", "params": {}}))
        assert json.loads(ws.recv(timeout=2))["status"] == 200
        assert fake.subscriptions() == 0


def test_drop_user_streams_closes_the_websocket(fake, client):
    with subscribed(fake) as (ws, _):
        assert fake.drop_user_streams() == 1
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=2)
    assert wait_until(lambda: fake.subscriptions() == 0)
    with subscribed(fake) as (again, answer):
        assert answer["status"] == 200
        buy(client, "after-drop")
        assert reports(again, 1)[0]["c"] == "after-drop"


def test_silenced_user_streams_answer_nothing_but_new_ones_work(fake, client):
    with subscribed(fake) as (ws, _):
        assert fake.silence_user_streams() == 1
        buy(client, "lost-event")
        assert not ws.ping().wait(0.3)  # no pong
        ws.send(json.dumps({"id": 9, "method": "ping"}))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        with subscribed(fake) as (fresh, answer):
            assert answer["status"] == 200 and fake.subscriptions() == 1
            assert fresh.ping().wait(2)
            fake.cancel_by_hand("lost-event")
            assert reports(fresh, 1)[0]["x"] == "CANCELED"


def test_slow_orders_make_the_client_time_out_on_a_booked_order(fake):
    client = make_client(fake)
    client._requests_params = {"timeout": 0.2}
    fake.slow_orders(0.6)
    with pytest.raises(requests.exceptions.Timeout):
        buy(client, "slow-1")
    assert fake.order("slow-1")["status"] == "NEW"
    fake.slow_orders(0)
    assert buy(client, "slow-2")["status"] == "NEW"
