"""Prometheus metrics of a running tree: a real HTTP scrape, parsed with prometheus_client's parser."""

import re
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tree import Tree, naive_mp, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_a_scrape_shows_trades_orders_traders_restarts_and_latency(tmp_path):
    prices = [f"{1 - 0.0015 * (i // 6):.8f}" for i in range(48)] + ["0.98950000"] * 200
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=25)
    port = free_port()
    t = Tree(tmp_path / "run", "--replay", tape, "--speed", "1", "--metrics-addr", str(port), *FILTERS)
    try:
        t.wait_for(lambda: len(t.processes("trader")) == 5, timeout=30)
        sym = (("symbol", "TESTUSDT"),)
        values = t.wait_for(lambda: (v := scrape(port)) and v.get(("naive_mp_traders_alive", sym)) == 5
                            and v.get(("naive_mp_trades_received_total", sym), 0) >= 48 and v, timeout=20)
        assert values[("naive_mp_trades_received_total", sym)] >= 48
        assert values[("naive_mp_orders_placed_total", sym)] >= 10
        assert values[("naive_mp_orders_filled_total", sym)] >= 5
        assert values[("naive_mp_tick_to_order_seconds_count", ())] >= 5
        assert values[("naive_mp_tick_to_order_seconds_bucket", (("le", "+Inf"),))] == \
            values[("naive_mp_tick_to_order_seconds_count", ())]
        assert values[("naive_mp_restarts_total", (("name", "gateway"), ("role", "gateway")))] == 0
        assert ("naive_mp_realized_pnl", (("quote", "USDT"), ("symbol", "TESTUSDT"))) in values
        # status: the replay's position out of its total, its speed and time left; each symbol's P&L
        streamer = t.processes("streamer")[0]["state"]
        assert re.fullmatch(r"[\d,]+/248 \(\d+%\), [\d,]+/s, ETA (-|\d+s|\d+m\d\ds)", streamer), streamer
        assert re.search(r"TESTUSDT -?[\d.]+ USDT", t.processes("gateway")[0]["state"])
        quiet = naive_mp("status", "-q", "--run-dir", tmp_path / "run", check=True).stdout.splitlines()
        assert quiet[0].split()[:2] == ["ROLE", "SYMBOL"] and quiet[1].startswith("supervisor")
    finally:
        t.kill_all()


def test_a_busy_or_bad_metrics_address_is_refused_before_starting(tmp_path):
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", ["1.0"] * 5)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        out = naive_mp("start", "--replay", tape, "--metrics-addr", f"127.0.0.1:{taken}", *FILTERS,
                       "--run-dir", tmp_path / "run")
    assert out.returncode == 2 and "cannot listen on 127.0.0.1" in out.stderr
    out = naive_mp("start", "--replay", tape, "--metrics-addr", "localhost:http", *FILTERS, "--run-dir", tmp_path / "run")
    assert out.returncode == 2 and "--metrics-addr" in out.stderr
