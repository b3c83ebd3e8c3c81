"""The fake Binance speaks what python-binance expects (raw streams, REST errors): checked with python-binance."""

import asyncio

import pytest
from binance import AsyncClient, BinanceSocketManager, Client
from binance.exceptions import BinanceAPIException

from fakebinance import FakeBinance, synthetic_trades


@pytest.fixture
def fake():
    with FakeBinance({"BTCUSDT": synthetic_trades(1, 50)}) as fake:
        fake.print_trades("BTCUSDT", 30)
        yield fake


@pytest.fixture
def client(fake):
    client = Client(ping=False, requests_params={"timeout": 2})
    client.API_URL = fake.api_url + "/api"
    yield client
    client.close_connection()


def test_raw_trade_stream_and_server_shutdown(fake):
    async def listen():
        client = AsyncClient()
        manager = BinanceSocketManager(client)
        manager.STREAM_URL = fake.stream_url
        async with manager.trade_socket("BTCUSDT") as socket:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, fake.print_trades, "BTCUSDT", 1)
            trade = await asyncio.wait_for(socket.recv(), 5)
            await loop.run_in_executor(None, fake.server_shutdown)
            shutdown = await asyncio.wait_for(socket.recv(), 5)
        await client.close_connection()
        return trade, shutdown

    trade, shutdown = asyncio.run(listen())
    assert trade == {"e": "trade", "E": trade["T"] + 1, "s": "BTCUSDT", "t": 31, "p": trade["p"], "q": "0.01000000",
                     "T": trade["T"], "m": True, "M": True}
    assert shutdown["e"] == "serverShutdown"


def test_historical_trades_pages(client):
    assert [t["id"] for t in client.get_historical_trades(symbol="BTCUSDT", fromId=25, limit=3)] == [25, 26, 27]
    assert [t["id"] for t in client.get_historical_trades(symbol="BTCUSDT", limit=2)] == [29, 30]
    assert client.get_historical_trades(symbol="BTCUSDT", fromId=31) == []
    assert client.get_recent_trades(symbol="BTCUSDT", limit=1)[0]["id"] == 30


@pytest.mark.parametrize("params, code", [
    ({"symbol": "FOOUSDT"}, -1121),
    ({"symbol": "BTCUSDT", "limit": 1001}, -1130),
    ({}, -1102),
])
def test_errors_are_binance_errors(client, params, code):
    with pytest.raises(BinanceAPIException) as caught:
        client.get_historical_trades(**params)
    assert caught.value.code == code and caught.value.status_code == 400


def test_ping_and_time(client):
    assert client.ping() == {}
    assert client.get_server_time()["serverTime"] > 1_700_000_000_000
