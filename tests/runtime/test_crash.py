"""kill -9 anywhere in the tree: restarted from cached state, nothing placed twice or lost."""

import csv
import json
import os
import re
import signal
import time

import pytest

import ledger
from tree import Tree, alive, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


def scenario_tape(tmp_path, flat=40):
    """Trader 1 buys at 0.9999 from the first trade; the price rests for `flat` trades (time to
    kill it), dips to fill the BUY, rests, rises to fill its SELL at 1.0006, then rests again."""
    prices = ["1.00000000"] * flat + ["0.99990000"] * 10 + ["1.00060000"] * 30
    return write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices)


def orders(run_dir):
    with open(run_dir / "orders.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def tree(tmp_path):
    trees = []

    def start(*args):
        t = Tree(tmp_path / "run", *args)
        trees.append(t)
        return t

    yield start
    for t in trees:
        t.kill_all()


def trader(t, trader_id):
    found = [p for p in t.processes("trader") if p["trader_id"] == trader_id]
    return found[0] if found else None


def test_killed_trader_with_open_order_is_restarted_and_follows_it(tree, tmp_path):
    t = tree("--replay", scenario_tape(tmp_path), "--speed", "1", "--exit-at-end", *FILTERS)
    first = t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "BUY_PLACED" and p)
    os.kill(first["pid"], signal.SIGKILL)
    back = t.wait_for(lambda: re.search(r"TESTUSDT#1 back up \(pid (\d+)\), ([\d.]+) ms", t.log()))
    assert int(back.group(1)) != first["pid"]
    assert float(back.group(2)) < 1000, "restarted within a second"
    again = t.wait_for(lambda: (p := trader(t, 1)) and p["pid"] != first["pid"] and p)
    assert again["restarts"] == 1 and again["state"] in ("BUY_PLACED", "SELL_PLACED")
    code, out = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    rows = orders(t.run_dir)
    ids = [r["client_order_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a client order id reached the exchange twice"
    mine = {r["side"]: r for r in rows if r["trader_id"] == "1"}
    assert (mine["BUY"]["price"], mine["BUY"]["status"]) == ("0.9999", "FILLED")
    assert (mine["SELL"]["price"], mine["SELL"]["status"]) == ("1.0006", "FILLED")
    assert any(r["trader_id"] == "2" for r in rows), "the finished trader was replaced by a fresh one"
    assert "which exists" not in t.log(), "a restarted trader placed an order again"


def test_trader_killed_again_and_again_never_duplicates(tree, tmp_path):
    prices = [f"{1 + 0.0002 * ((i // 7) % 5 - 2):.8f}" for i in range(300)]
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=20)
    t = tree("--replay", tape, "--speed", "1", "--exit-at-end", "--set", "rebuy_interval=0", *FILTERS)
    t.wait_for(lambda: t.processes("trader"))
    killed = 0
    while t.proc.poll() is None and killed < 12:
        for p in t.processes("trader"):
            if alive(p["pid"]):
                os.kill(p["pid"], signal.SIGKILL)
                killed += 1
        time.sleep(0.3)
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    assert killed >= 3
    ids = [r["client_order_id"] for r in orders(t.run_dir)]
    assert ids and len(ids) == len(set(ids))


def test_killed_streamer_comes_back_and_nothing_is_lost(tree, tmp_path):
    prices = [f"{1 + 0.0001 * (i % 9 - 4):.8f}" for i in range(200)]
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=25)
    t = tree("--replay", tape, "--speed", "1", "--exit-at-end", "--json", *FILTERS)
    streamer = t.wait_for(lambda: t.processes("streamer"))[0]
    time.sleep(1.5)
    os.kill(streamer["pid"], signal.SIGKILL)
    back = t.wait_for(lambda: (s := t.processes("streamer")) and s[0]["pid"] != streamer["pid"] and s[0])
    assert back["restarts"] == 1
    code, out = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    summary = json.loads(out)
    assert summary["events"] == 200 and summary["lost_events"] == 0


def falling_tape(tmp_path, flat=240):
    """The price steps down far enough for every step to fill the last trader's BUY and ask for a
    rebuy, until all 5 traders hold an open SELL; then it rests (time to kill), far below them."""
    prices = []
    for k in range(8):
        prices += [f"{1 - 0.0015 * k:.8f}"] * 6
    prices += [f"{1 - 0.0015 * 7:.8f}"] * flat
    return write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=25)


def test_killed_leader_brings_back_the_same_traders_following_their_orders(tree, tmp_path):
    t = tree("--replay", falling_tape(tmp_path), "--speed", "1", "--exit-at-end", *FILTERS)
    held = t.wait_for(lambda: len(ps := [p for p in t.processes("trader") if p["state"] == "SELL_PLACED"]) == 5
                      and ps)
    leader = t.processes("leader")[0]
    before = ledger.orders(t.run_dir)
    os.kill(leader["pid"], signal.SIGKILL)
    t.wait_for(lambda: not any(alive(p["pid"]) for p in held), timeout=5)  # no orphan left
    back = t.wait_for(lambda: len(ps := [p for p in t.processes("trader") if p["pid"] not in {q["pid"] for q in held}
                                         and p["state"] == "SELL_PLACED"]) == 5 and ps)
    assert sorted(p["trader_id"] for p in back) == sorted(p["trader_id"] for p in held), "the same trader ids"
    assert t.processes("leader")[0]["restarts"] == 1
    assert "5 traders back from the store" in t.log()
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    after = ledger.orders(t.run_dir)
    assert len(after) == len(before) == 10, "nothing placed again, nothing new"
    assert max(int(o["trader_id"]) for o in after) == 5, "no new trader while all 5 hold their SELLs"
    assert sum(o["side"] == "BUY" for o in after) == 5 and sum(o["side"] == "SELL" for o in after) == 5
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []


def test_killed_gateway_keeps_its_book_and_traders_find_their_orders(tree, tmp_path):
    t = tree("--replay", scenario_tape(tmp_path, flat=60), "--speed", "1", "--exit-at-end", *FILTERS)
    t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "BUY_PLACED")
    gateway = t.processes("gateway")[0]
    os.kill(gateway["pid"], signal.SIGKILL)
    t.wait_for(lambda: "book restored: 1 orders (1 open)" in t.log())
    t.wait_for(lambda: "TESTUSDT#1: the gateway came back; checking orders" in t.log())
    t.wait_for(lambda: "TESTUSDT-1-1-B is NEW" in t.log())  # the book survived
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    rows = orders(t.run_dir)
    mine = {r["side"]: r for r in rows if r["trader_id"] == "1"}
    assert mine["BUY"]["order_id"] == "1" and mine["BUY"]["status"] == "FILLED"
    assert mine["SELL"]["status"] == "FILLED"
    assert "which exists" not in t.log(), "nothing was placed again"
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []
