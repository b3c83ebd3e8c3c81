"""Trading control and per-symbol settings on a running system, and across a restart."""

import json

import pytest

import ledger
from tree import Tree, naive_mp, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


def falling_tape(tmp_path, flat=400, gap_ms=25):
    """Five traders end up holding a SELL each, far above a price that then rests."""
    prices = []
    for k in range(8):
        prices += [f"{1 - 0.0015 * k:.8f}"] * 6
    prices += [f"{1 - 0.0015 * 7:.8f}"] * flat
    return write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=gap_ms)


@pytest.fixture
def trees():
    started = []
    yield started
    for t in started:
        t.kill_all()


def holding(t):
    return [p for p in t.processes("trader") if p["state"] == "SELL_PLACED"]


def leader_state(t):
    leaders = t.processes("leader")
    return leaders[0]["state"] if leaders else ""


def test_trade_stop_keeps_states_and_orders_across_a_restart_and_start_resumes_them(trees, tmp_path):
    args = ("--replay", falling_tape(tmp_path), "--speed", "1", *FILTERS)
    run_dir = tmp_path / "run"
    t = Tree(run_dir, *args)
    trees.append(t)
    held = t.wait_for(lambda: len(h := holding(t)) == 5 and h)
    ids = sorted(p["trader_id"] for p in held)
    out = naive_mp("trade", "stop", "testusdt", "--run-dir", run_dir, check=True)
    assert "TESTUSDT: stopped now" in out.stdout
    t.wait_for(lambda: leader_state(t) == "stopped, 5 traders" and not t.processes("trader"))
    assert t.processes("leader")[0]["restarts"] == 0 and "crashed" not in t.log(), "the leader stopped them, alive"
    open_before = [o for o in ledger.orders(run_dir) if o["status"] == "NEW"]
    assert len(open_before) == 5, "their SELLs stay on the exchange"
    naive_mp("stop", "--run-dir", run_dir, check=True)
    t.wait(timeout=30)
    t = Tree(run_dir, *args)  # the same command: the stop holds
    trees.append(t)
    t.wait_for(lambda: leader_state(t) == "stopped, 5 traders")
    assert t.processes("trader") == []
    naive_mp("trade", "start", "TESTUSDT", "--run-dir", run_dir, check=True)
    back = t.wait_for(lambda: len(h := holding(t)) == 5 and h)
    assert sorted(p["trader_id"] for p in back) == ids
    assert [o for o in ledger.orders(run_dir) if o["status"] == "NEW"] == open_before
    assert ledger.invariant_errors(run_dir, chunks=5) == []


def test_trade_shutdown_starts_nothing_new_and_holds_across_a_restart(trees, tmp_path):
    args = ("--replay", falling_tape(tmp_path, flat=100, gap_ms=150), "--speed", "1", *FILTERS)
    run_dir = tmp_path / "run"
    t = Tree(run_dir, *args)
    trees.append(t)
    t.wait_for(lambda: t.processes("trader"))
    naive_mp("trade", "shutdown", "TESTUSDT", "--run-dir", run_dir, check=True)
    t.wait_for(lambda: leader_state(t).startswith("shutting down"))
    known = {tid for _, tid in ledger.traders(run_dir)}  # the traders when the shutdown began
    t.wait_for(lambda: "ignored: shutting down" in t.log(), timeout=30)  # a rebuy was refused
    naive_mp("stop", "--run-dir", run_dir, check=True)
    t.wait(timeout=30)
    t = Tree(run_dir, *args)
    trees.append(t)
    t.wait_for(lambda: leader_state(t).startswith("shutting down"))
    t.wait_for(lambda: t.processes("trader"))
    assert {p["trader_id"] for p in t.processes("trader")} <= known, "no trader was added"
    assert max(o["trader_id"] for o in ledger.orders(run_dir)) <= max(known)
    assert ledger.invariant_errors(run_dir, chunks=5) == []


def test_settings_set_and_reload_change_the_next_traders_only(trees, tmp_path):
    prices = ["1.00000000"] * 40 + ["0.99990000"] * 10 + ["1.00060000"] * 40
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices)
    run_dir = tmp_path / "run"
    t = Tree(run_dir, "--replay", tape, "--speed", "1", "--exit-at-end", *FILTERS)
    trees.append(t)
    t.wait_for(lambda: any(p["state"] == "BUY_PLACED" for p in t.processes("trader")))
    bad = naive_mp("settings", "set", "TESTUSDT", "budget=-1", "--run-dir", run_dir)
    assert bad.returncode == 2 and "budget" in bad.stderr
    naive_mp("settings", "set", "TESTUSDT", "budget=50", "--run-dir", run_dir, check=True)
    assert "reloaded settings in 1 leader" in naive_mp("reload", "--run-dir", run_dir, check=True).stdout
    t.wait_for(lambda: "new settings for the traders started from now on" in t.log())
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    quantities = {(o["trader_id"], o["side"]): o["quantity"] for o in ledger.orders(run_dir)}
    assert quantities[(1, "BUY")] == "20" and quantities[(1, "SELL")] == "20", "the running trader kept its budget"
    assert quantities[(2, "BUY")] == "9.99", "its replacement got 50 / 5"
    shown = json.loads(naive_mp("settings", "show", "TESTUSDT", "--json", "--run-dir", run_dir, check=True).stdout)
    assert shown["TESTUSDT"]["settings"]["budget"] == "50"
    history = naive_mp("settings", "history", "TESTUSDT", "--run-dir", run_dir, check=True).stdout
    assert "budget: 100 -> 50  (settings set)" in history
