"""Paper trading on the live market: the real streamer, python-binance and a fake Binance on 127.0.0.1."""

import json
import os
import re
import signal
import time

import pytest
from decimal import Decimal

from naive_mp.core.money import fmt

import ledger
from fakebinance import TESTUSDT_INFO as EXCHANGE_INFO, FakeBinance, FakeTrade, wait_until
from tree import Tree, naive_mp, write_tape

LEVELS = ["1.0000", "0.9970", "0.9960", "1.0020"]  # BUYs fill, rebuys fire, SELLs fill, traders are replaced
FIRST_ID = 5_000_000


def wavy(n: int) -> list[FakeTrade]:
    return [FakeTrade(FIRST_ID + i, LEVELS[(i // 10) % 4], "1.00", 1_723_161_255_000 + 20 * i) for i in range(n)]


@pytest.fixture
def fake(monkeypatch):
    with FakeBinance({"TESTUSDT": wavy(400)}, exchange_info=EXCHANGE_INFO) as server:
        monkeypatch.setenv("NAIVE_MP_BINANCE_API_URL", server.api_url)
        monkeypatch.setenv("NAIVE_MP_BINANCE_STREAM_URL", server.stream_url)
        yield server


def gateway_trades(t: Tree) -> int:
    found = t.processes("gateway")
    applied = re.match(r"paper, ([\d,]+) trades", found[0]["state"]) if found else None  # else "starting"
    return int(applied.group(1).replace(",", "")) if applied else -1


def stop(t: Tree) -> dict:
    naive_mp("stop", "--run-dir", t.run_dir, check=True)
    t.wait(timeout=60)
    return json.loads((t.run_dir / "summary.json").read_text())


def test_a_paper_session_on_the_live_stream_trades_every_printed_trade_once(fake, tmp_path):
    t = Tree(tmp_path / "run", "TESTUSDT", "--record", tmp_path / "tapes")
    try:
        t.wait_for(lambda: t.processes("trader") and fake.open_connections() >= 1, timeout=30)
        fake.play(interval_s=0.01)
        fake.wait_played(timeout=60)
        t.wait_for(lambda: gateway_trades(t) == 400, timeout=30)
        assert "live, 400 sent" in t.processes("streamer")[0]["state"]
        summary = stop(t)
    finally:
        t.kill_all()
    assert summary["events"] == 400 and summary["lost_events"] == 0
    assert summary["orders_filled"] >= 6 and summary["cycles"] >= 2
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []
    (recorded,) = (tmp_path / "tapes").glob("TESTUSDT-trades-*.csv")
    assert recorded.read_text() == "".join(line_of(t) for t in fake.printed("TESTUSDT"))
    cache = json.loads((t.run_dir / "exchange-info.json").read_text())
    assert "TESTUSDT" in json.dumps(cache), "the filters are cached for an offline replay"
    # an offline replay of that symbol needs no filter flags: the run directory has them
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", LEVELS * 10)
    replay = naive_mp("start", "--replay", tape, "--exit-at-end", "--fresh", "--run-dir", t.run_dir, "--json")
    assert replay.returncode == 0, replay.stderr[-2000:]


def line_of(trade: FakeTrade) -> str:
    """The archive's line of a trade: id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch."""
    price, qty = Decimal(trade.price), Decimal(trade.qty)
    return f"{trade.id},{fmt(price)},{fmt(qty)},{fmt(price * qty)},{trade.time_ms},{trade.buyer_maker},True\n"


def test_record_writes_tapes_that_backtest_reads_as_the_same_trades(fake, tmp_path):
    import subprocess
    import sys
    folder = tmp_path / "tapes"
    rec = subprocess.Popen([sys.executable, "-m", "naive_mp", "record", "testusdt", "--dir", str(folder)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: fake.open_connections() >= 1, timeout=30), "record connects to the stream"
        fake.play(interval_s=0.002, per_tick=5)
        fake.wait_played(timeout=60)
        deadline = time.monotonic() + 20
        while sum(len(p.read_text().splitlines()) for p in folder.glob("*.csv")) < 400:
            assert time.monotonic() < deadline and rec.poll() is None, rec.stderr.read() if rec.poll() else ""
            time.sleep(0.1)
        rec.send_signal(signal.SIGINT)
        out, err = rec.communicate(timeout=20)
    finally:
        rec.kill()
    assert rec.returncode == 0 and "recorded 400 trades" in out, err[-2000:]
    (tape,) = folder.glob("TESTUSDT-trades-2024-08-0*.csv")
    assert tape.read_text() == "".join(line_of(t) for t in fake.printed("TESTUSDT"))
    result = naive_mp("backtest", tape, "--tick-size", "0.0001", "--step-size", "0.01", "--json", check=True)
    assert json.loads(result.stdout)["events"] == 400


def test_a_killed_streamer_s_successor_backfills_from_the_last_id_it_published(fake, tmp_path):
    t = Tree(tmp_path / "run", "TESTUSDT")
    try:
        t.wait_for(lambda: t.processes("trader") and fake.open_connections() >= 1, timeout=30)
        fake.play(interval_s=0.01)
        t.wait_for(lambda: gateway_trades(t) >= 120, timeout=30)
        streamer = t.processes("streamer")[0]
        os.kill(streamer["pid"], signal.SIGKILL)
        t.wait_for(lambda: (s := t.processes("streamer")) and s[0]["pid"] != streamer["pid"], timeout=30)
        fake.wait_played(timeout=60)
        t.wait_for(lambda: gateway_trades(t) == 400, timeout=30)
        time.sleep(0.5)
        assert gateway_trades(t) == 400, "nothing applied twice"
        summary = stop(t)
    finally:
        t.kill_all()
    assert summary["events"] == 400 and summary["lost_events"] == 0
    assert fake.rest_calls["historicalTrades"] >= 1, "the successor asked REST for what it had not published"
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []


def test_offline_start_fails_in_seconds_pointing_at_replay_and_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("NAIVE_MP_BINANCE_API_URL", "http://127.0.0.1:9")
    began = time.monotonic()
    out = naive_mp("start", "XRPUSDT", "--run-dir", tmp_path / "run")
    assert out.returncode == 1 and time.monotonic() - began < 20
    assert "cannot be reached" in out.stderr and "--replay" in out.stderr and "naive-mp demo" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_unknown_symbol_is_refused_naming_it(fake, tmp_path):
    out = naive_mp("start", "TESTUSDT", "NOPEUSDT", "--run-dir", tmp_path / "run")
    assert out.returncode == 1 and "NOPEUSDT" in out.stderr and "Traceback" not in out.stderr


def test_the_streamer_process_survives_drops_refusals_silence_shutdowns_cuts_bursts_and_garbage(fake, tmp_path):
    knobs = {"spec": {"stream_silence_s": 1.0, "stream_max_age_s": 3.0}}  # Binance's 24 h cut, scaled down
    t = Tree(tmp_path / "run", "TESTUSDT", knobs=knobs)
    try:
        t.wait_for(lambda: t.processes("trader") and fake.open_connections() >= 1, timeout=30)
        fake.print_trades("TESTUSDT", 60)
        fake.drop()
        fake.refuse(2.0)  # reconnects refused for a while: trades printed meanwhile come back from REST
        fake.print_trades("TESTUSDT", 60)
        t.wait_for(lambda: gateway_trades(t) == 120, timeout=30)
        fake.send_raw(["{not json", '{"e": "trade", "s": "TESTUSDT"}', b"\x00\x01"])
        fake.silence()  # open, answering pings, sending nothing
        fake.print_trades("TESTUSDT", 40)
        t.wait_for(lambda: gateway_trades(t) == 160, timeout=30)
        fake.server_shutdown()
        fake.print_trades("TESTUSDT", 200)  # a burst far past python-binance's 100-message queue
        fake.play(interval_s=0.01)
        fake.wait_played(timeout=60)
        t.wait_for(lambda: gateway_trades(t) == 400, timeout=30)
        time.sleep(4)  # past the scaled-down 24 h cut at least once more
        state = t.processes("streamer")[0]["state"]
        summary = stop(t)
    finally:
        t.kill_all()
    assert summary["events"] == 400 and summary["lost_events"] == 0
    reconnects = int(state.split(" reconnects")[0].rsplit(", ", 1)[1])
    assert reconnects >= 3 and "3 malformed" in state, state
    assert fake.rest_calls["historicalTrades"] >= 1
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []
