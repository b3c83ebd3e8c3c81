"""LiveTrades with the real python-binance client against the fake Binance.

Every test compares what the consumer got (through the pipe and take(), polled
by a zmq poller as the streamer does) with everything the fake printed: the
same trades, in id order, none twice, none missing, whatever the fault.
"""

import asyncio
import time
from decimal import Decimal

import pytest
import zmq
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import ReadLoopClosed

from fakebinance import FakeBinance, synthetic_trades, trades_from_jsonl, wait_until
from naive_mp import wire
from naive_mp.exchange.binance_stream import LiveTrades, LiveTradesError

N = 600  # trades per test: about 0.7 s of play at one a millisecond
FAST = dict(silence_s=5.0, backoff_s=0.05, backoff_max_s=0.4, connect_timeout_s=2.0, rest_timeout_s=2.0)


@pytest.fixture
def btc(binance_data):
    """600 real BTCUSDT trades (ids from 3735683259)."""
    return trades_from_jsonl(binance_data("ws/btcusdt-trade-stream-2024-08-08.jsonl"), limit=N)


def expected(fake: FakeBinance, symbol: str, after: int | None = None) -> list[wire.Trade]:
    return [wire.Trade(t.id, Decimal(t.price), t.time_ms * 1000, Decimal(t.qty), t.buyer_maker)
            for t in fake.printed(symbol)
            if after is None or t.id > after]


def drain(live: LiveTrades, want: dict[str, int], timeout: float = 15.0) -> dict[str, list[wire.Trade]]:
    """Take trades as the streamer would (a zmq poller on live.fileno()) until `want` of each came."""
    got: dict[str, list[wire.Trade]] = {symbol: [] for symbol in want}
    poller = zmq.Poller()
    poller.register(live.fileno(), zmq.POLLIN)
    deadline = time.monotonic() + timeout
    while any(len(got[s]) < n for s, n in want.items()) and time.monotonic() < deadline:
        if poller.poll(50):
            for symbol, trades in live.take().items():
                got[symbol].extend(trades)
    time.sleep(0.1)  # anything more would be a duplicate
    for symbol, trades in live.take().items():
        got[symbol].extend(trades)
    return got


def live_trades(fake: FakeBinance, symbols, **options) -> LiveTrades:
    return LiveTrades(symbols, api_url=fake.api_url, stream_url=fake.stream_url, **{**FAST, **options})


def play_with_fault(fake: FakeBinance, symbol: str, after: int, fault) -> None:
    """Print the queued trades at a pace; once `after` are printed, inject `fault()`; wait for the end."""
    fake.play(interval_s=0.001)
    assert wait_until(lambda: len(fake.printed(symbol)) >= after, timeout=10)
    fault()
    fake.wait_played()


def test_normal_stream_of_two_symbols(btc):
    eth = synthetic_trades(500_000, 600)
    with FakeBinance({"BTCUSDT": btc, "ETHUSDT": eth}) as fake, live_trades(fake, ["BTCUSDT", "ETHUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.play(interval_s=0.001)
        fake.wait_played()
        got = drain(live, {"BTCUSDT": N, "ETHUSDT": 600})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT") and got["ETHUSDT"] == expected(fake, "ETHUSDT")
    assert got["BTCUSDT"][0] == wire.Trade(3735683259, Decimal("61837.63000000"), 1723161255342000,
                                           Decimal("0.02000000"), True)
    assert (stats.messages, stats.live, stats.backfilled, stats.gaps, stats.malformed) == (N + 600, N + 600, 0, 0, 0)
    assert sum(stats.reconnects.values()) == 0 and fake.connections == 1
    assert stats.last_ids == {"BTCUSDT": btc[-1].id, "ETHUSDT": eth[-1].id}


def test_dropped_stream_with_reconnects_refused_loses_nothing(btc):
    with FakeBinance({"BTCUSDT": btc}) as fake, live_trades(fake, ["BTCUSDT"], last_ids={"BTCUSDT": btc[0].id - 1}) as live:
        assert wait_until(lambda: live.stats().connected)

        def cut():
            fake.refuse(0.3)
            fake.drop()
        play_with_fault(fake, "BTCUSDT", N // 4, cut)
        got = drain(live, {"BTCUSDT": N})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert stats.reconnects["closed"] == 1 and stats.connect_failures >= 1 and fake.refused >= 1
    assert stats.backfilled >= 1 and stats.live + stats.backfilled == N


def test_trades_missed_while_disconnected_come_even_if_the_market_goes_quiet(btc):
    """No newer trade reveals the hole: the reconnection itself asks REST what came meanwhile."""
    with FakeBinance({"BTCUSDT": btc}) as fake, live_trades(fake, ["BTCUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.print_trades("BTCUSDT", 100)
        assert wait_until(lambda: live.stats().last_ids["BTCUSDT"] == btc[99].id)
        fake.refuse(0.3)
        fake.drop()
        fake.print_trades("BTCUSDT", N - 100)  # and then nothing more
        got = drain(live, {"BTCUSDT": N})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert stats.backfilled == N - 100 and stats.reconnects["closed"] == 1


def test_silent_connection_is_noticed_and_replaced(btc):
    with FakeBinance({"BTCUSDT": btc}) as fake, live_trades(fake, ["BTCUSDT"], silence_s=0.3) as live:
        assert wait_until(lambda: live.stats().connected)
        play_with_fault(fake, "BTCUSDT", N // 4, fake.silence)
        got = drain(live, {"BTCUSDT": N})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert stats.reconnects["silent"] >= 1 and stats.backfilled >= 1


def test_server_shutdown_is_survived_make_before_break(btc):
    with FakeBinance({"BTCUSDT": btc}, shutdown_grace_s=1.0) as fake, live_trades(fake, ["BTCUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        play_with_fault(fake, "BTCUSDT", N // 4, fake.server_shutdown)
        got = drain(live, {"BTCUSDT": N})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert stats.reconnects["server_shutdown"] == 1
    assert fake.closed_by_server["shutdown"] == 0  # the client left before the server closed
    assert stats.gaps == 0  # the new connection was streaming before the old one closed


def test_server_cut_after_max_age_is_survived(btc):
    """Binance's 24 h cut, scaled down to 0.2 s, with a client that does not see it coming."""
    with FakeBinance({"BTCUSDT": btc}, max_age_s=0.2) as fake, live_trades(fake, ["BTCUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.play(interval_s=0.001)
        fake.wait_played()
        got = drain(live, {"BTCUSDT": N})
        stats = live.stats()
    assert got and got["BTCUSDT"] == expected(fake, "BTCUSDT", after=got["BTCUSDT"][0].trade_id - 1)
    assert got["BTCUSDT"][0].trade_id == btc[0].id
    assert fake.closed_by_server["cut"] >= 2 and stats.reconnects["closed"] >= 2


def test_reconnects_before_the_cut(btc):
    """max_age_s below the server's cut: the client replaces its connection first, without a gap."""
    with FakeBinance({"BTCUSDT": btc}, max_age_s=30) as fake, live_trades(fake, ["BTCUSDT"], max_age_s=0.15) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.play(interval_s=0.001)
        fake.wait_played()
        got = drain(live, {"BTCUSDT": N})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert stats.reconnects["max_age"] >= 2 and fake.closed_by_server["cut"] == 0 and stats.gaps == 0


def test_burst_faster_than_python_binance_queue_loses_nothing():
    with FakeBinance({"BTCUSDT": synthetic_trades(1, 5000)}) as fake, live_trades(fake, ["BTCUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.print_trades("BTCUSDT", 5000)
        got = drain(live, {"BTCUSDT": 5000})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert (stats.live, stats.backfilled, stats.gaps, sum(stats.reconnects.values())) == (5000, 0, 0, 0)


def test_a_full_backlog_sheds_and_fetches_again():
    """Memory stays bounded: beyond max_backlog trades waiting (here behind a slow REST backfill),
    new ones are dropped, and fetched from REST once the backlog is through."""
    with FakeBinance({"BTCUSDT": synthetic_trades(1, 3010)}) as fake:
        fake.print_trades("BTCUSDT", 10)
        fake.rest_delay_s = 0.3
        with live_trades(fake, ["BTCUSDT"], last_ids={"BTCUSDT": 0}, max_backlog=50) as live:
            assert wait_until(lambda: live.stats().connected)
            fake.print_trades("BTCUSDT", 3000)  # while the backfill from id 1 waits for REST
            got = drain(live, {"BTCUSDT": 3010})
            stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert stats.shed > 0 and stats.live + stats.backfilled == 3010


def test_the_same_burst_overflows_a_plain_python_binance_socket(caplog):
    """The fault is real: python-binance's own socket (queue of 100) dies of this burst."""
    async def listen(fake: FakeBinance) -> list[dict]:
        client = AsyncClient()
        manager = BinanceSocketManager(client)
        manager.STREAM_URL = fake.stream_url
        messages = []
        async with manager.multiplex_socket(["btcusdt@trade"]) as socket:
            await asyncio.get_running_loop().run_in_executor(None, fake.print_trades, "BTCUSDT", 2000)
            await asyncio.sleep(0.3)  # a consumer busy elsewhere for a moment
            try:
                while len(messages) < 2000:
                    messages.append(await asyncio.wait_for(socket.recv(), 5))
            except ReadLoopClosed:  # dead for good, and what it had queued is out of reach
                pass
        await client.close_connection()
        return messages

    with FakeBinance({"BTCUSDT": synthetic_trades(1, 2000)}) as fake:
        messages = asyncio.run(listen(fake))
    assert len([m for m in messages if m.get("e") == "trade"]) < 2000
    assert "BinanceWebsocketQueueOverflow" in caplog.text


def test_malformed_messages_are_counted_and_skipped(btc):
    bad = ["not json", b"\x00\x01", '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}',
           '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","T":1}}',
           '{"stream":"xrpusdt@trade","data":{"e":"trade","s":"XRPUSDT","t":1,"p":"0.5","T":1}}',
           '{"stream":"btcusdt@kline_1m","data":{"e":"kline","s":"BTCUSDT"}}']
    with FakeBinance({"BTCUSDT": btc}) as fake, live_trades(fake, ["BTCUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.print_trades("BTCUSDT", 100)
        fake.send_raw(bad)
        fake.print_trades("BTCUSDT", 100)
        got = drain(live, {"BTCUSDT": 200})
        stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT")
    assert (stats.malformed, stats.messages, stats.gaps) == (len(bad), 200 + len(bad), 0)
    assert sum(stats.reconnects.values()) == 0 and fake.connections == 1


def test_starting_from_a_last_id_backfills_first_through_rest_errors():
    trades = synthetic_trades(10_000, 2700)
    with FakeBinance({"BTCUSDT": trades}) as fake:
        fake.print_trades("BTCUSDT", 2500)  # printed while no streamer ran
        fake.rest_fail(2, status=503)
        last = trades[99].id  # the last one the previous streamer published
        with live_trades(fake, ["BTCUSDT"], last_ids={"BTCUSDT": last}) as live:
            assert wait_until(lambda: live.stats().connected)
            fake.play(interval_s=0.001)
            fake.wait_played()
            got = drain(live, {"BTCUSDT": 2600})
            stats = live.stats()
    assert got["BTCUSDT"] == expected(fake, "BTCUSDT", after=last)
    assert stats.backfilled >= 2400 and stats.rest_errors == 2
    assert fake.rest_calls["historicalTrades"] >= 5  # 3 pages of 1,000 at most, and 2 refused


def test_take_and_close():
    with FakeBinance({"BTCUSDT": []}) as fake:
        live = live_trades(fake, ["BTCUSDT"]).start()
        assert live.take() == {}
        began = time.monotonic()
        live.close()
        live.close()
        assert time.monotonic() - began < 2


def test_unusable_arguments_are_refused():
    with pytest.raises(ValueError, match="upper-case"):
        LiveTrades(["btcusdt"])
    with pytest.raises(ValueError, match="not streamed"):
        LiveTrades(["BTCUSDT"], last_ids={"ETHUSDT": 1})
    with pytest.raises(ValueError, match="ws://"):
        LiveTrades(["BTCUSDT"], stream_url="http://127.0.0.1:1")


def test_a_feed_that_fails_is_reported_by_take(monkeypatch):
    async def broken(self):
        raise KeyError("bug")
    monkeypatch.setattr("naive_mp.exchange.binance_feed.Feed.run", broken)
    live = LiveTrades(["BTCUSDT"], api_url="http://127.0.0.1:9", stream_url="ws://127.0.0.1:9").start()
    poller = zmq.Poller()
    poller.register(live.fileno(), zmq.POLLIN)
    assert poller.poll(2000)
    with pytest.raises(LiveTradesError, match="bug"):
        live.take()
    live.close()


def test_a_bug_in_the_read_loop_stops_the_feed_instead_of_reconnecting(monkeypatch):
    def broken(frame):
        raise ZeroDivisionError("bug in decoding")
    monkeypatch.setattr("naive_mp.exchange.binance_feed.decode_frame", broken)
    with FakeBinance({"BTCUSDT": synthetic_trades(1, 5)}) as fake, live_trades(fake, ["BTCUSDT"]) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.print_trades("BTCUSDT", 1)
        poller = zmq.Poller()
        poller.register(live.fileno(), zmq.POLLIN)
        assert poller.poll(5000)
        with pytest.raises(LiveTradesError, match="bug in decoding"):
            live.take()
        assert sum(live.stats().reconnects.values()) == 0
