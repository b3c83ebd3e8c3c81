"""kill -9 anywhere in the tree: restarted from cached state, nothing placed twice or lost."""

import csv
import json
import os
import re
import signal
import time

import pytest

import ledger
from tree import Tree, alive, naive_mp, write_tape

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

    def start(*args, **kwargs):
        t = Tree(tmp_path / "run", *args, **kwargs)
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


def test_a_healthy_trader_killed_again_and_again_is_never_given_up(tree, tmp_path):
    """kill -9 a trader holding a filled BUY six times, each soon after it is back up:
    a death after its hello is no boot failure, so it restarts at once every time and
    follows its SELL to the end (the old rule gave up after 5 deaths within 5 s of a start)."""
    prices = ["1.00000000"] * 5 + ["0.99990000"] * 100 + ["1.00060000"] * 30
    t = tree("--replay", write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices), "--speed", "1",
             "--exit-at-end", *FILTERS)
    pid = t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "SELL_PLACED" and p)["pid"]
    for kills in range(1, 7):
        os.kill(pid, signal.SIGKILL)
        backs = t.wait_for(lambda: (b := re.findall(r"TESTUSDT#1 back up \(pid (\d+)\)", t.log())) and
                           len(b) >= kills and b)
        pid = int(backs[-1])
        time.sleep(0.3)
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    assert "giving up" not in t.log()
    assert "trader TESTUSDT#1 finished its cycle" in t.log()
    mine = {r["side"]: r for r in orders(t.run_dir) if r["trader_id"] == "1"}
    assert mine["SELL"]["status"] == "FILLED"


def test_a_hung_trader_is_killed_and_restarted_from_its_state(tree, tmp_path):
    t = tree("--replay", scenario_tape(tmp_path, flat=60), "--speed", "1", "--exit-at-end", *FILTERS,
             knobs={"spec": {"trader_stale_s": 2.0}})
    first = t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "BUY_PLACED" and p)
    os.kill(first["pid"], signal.SIGSTOP)  # hung: alive, but silent
    again = t.wait_for(lambda: (p := trader(t, 1)) and p["pid"] != first["pid"] and p, timeout=10)
    assert again["restarts"] == 1 and not alive(first["pid"])
    assert f"TESTUSDT#1 (pid {first['pid']}) sent nothing for" in t.log()
    t.wait_for(lambda: f"TESTUSDT#1 back up (pid {again['pid']})" in t.log())
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    assert t.log().count("sent nothing for") == 1, "a healthy trader's beats keep it alive"
    mine = {r["side"]: r for r in orders(t.run_dir) if r["trader_id"] == "1"}
    assert mine["BUY"]["status"] == "FILLED" and mine["SELL"]["status"] == "FILLED"


def test_a_trader_given_up_on_shows_in_status_and_fails_the_run(tree, tmp_path):
    t = tree("--replay", scenario_tape(tmp_path), "--speed", "1", "--exit-at-end", *FILTERS,
             knobs={"boot_fails": [1]})
    row = t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "GAVE_UP" and p)
    assert row["restarts"] == 4 and not alive(row["pid"])
    assert "GAVE_UP" in naive_mp("status", "--run-dir", t.run_dir).stdout
    leader = t.processes("leader")[0]
    os.kill(leader["pid"], signal.SIGKILL)  # the new leader never knew trader 1: the supervisor remembers
    t.wait_for(lambda: (ls := t.processes("leader")) and ls[0]["pid"] != leader["pid"] and trader(t, 2))
    assert trader(t, 1)["state"] == "GAVE_UP"
    code, _ = t.wait(timeout=60)
    assert code != 0, "a run that gave up on a trader failed"
    log = t.log()
    assert log.count("crashed: RuntimeError: TESTUSDT#1 cannot boot (test)") == 5
    assert ("giving up on trader TESTUSDT#1: it could not boot 5 times in a row (it died before its hello); "
            "last state NEW") in log
    assert "the run failed: gave up on TESTUSDT#1 (the log lines above say why)" in log


def test_a_trader_hung_in_lockstep_is_restarted_and_the_orders_still_equal_backtests(tree, tmp_path):
    tape = scenario_tape(tmp_path, flat=10)
    naive_mp("backtest", tape, *FILTERS, "--orders-out", tmp_path / "backtest.csv", check=True)
    t = tree("--replay", tape, "--lockstep", "--exit-at-end", "--orders-out", tmp_path / "lockstep.csv", *FILTERS,
             knobs={"spec": {"trader_stale_s": 2.0}, "hang_on_fill": [1]})
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    assert re.search(r"TESTUSDT#1 \(pid \d+\) sent nothing for [\d.]+ s: killing it", t.log())
    assert "TESTUSDT#1 back up" in t.log()
    assert (tmp_path / "lockstep.csv").read_bytes() == (tmp_path / "backtest.csv").read_bytes()


def cancel_at_gateway(run_dir, client_order_id):
    """What a stranger (or a person on the exchange's page) does: cancel an order behind the trader's back."""
    import zmq

    from naive_mp import wire
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(wire.address(run_dir, "gateway"))
        sock.send(wire.encode(wire.Cancel(req_id=1, client_order_id=client_order_id)))
        assert sock.poll(5000), "the gateway answers"
        return wire.Decoder("gateway", wire.GatewayReply)(sock.recv())
    finally:
        ctx.destroy(linger=0)


def test_an_order_canceled_behind_the_traders_back_is_noticed_and_recovered(tree, tmp_path):
    prices = ["1.00000000"] * 60 + ["0.99990000"] * 40 + ["1.00060000"] * 30
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices)
    t = tree("--replay", tape, "--speed", "1", "--exit-at-end", *FILTERS)
    t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "BUY_PLACED")
    assert cancel_at_gateway(t.run_dir, "TESTUSDT-1-1-B").order.status == "CANCELED"
    t.wait_for(lambda: "TESTUSDT#1: its BUY TESTUSDT-1-1-B was canceled at the exchange" in t.log())
    t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "SELL_PLACED")
    assert cancel_at_gateway(t.run_dir, "TESTUSDT-1-2-S").order.status == "CANCELED"
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    status = {r["client_order_id"]: r["status"] for r in orders(t.run_dir) if r["trader_id"] == "1"}
    assert status == {"TESTUSDT-1-1-B": "CANCELED", "TESTUSDT-1-2-B": "FILLED", "TESTUSDT-1-2-S": "CANCELED",
                      "TESTUSDT-1-2-S2": "FILLED"}
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []


def test_a_forged_done_report_does_not_stop_a_trader_whose_sell_is_open(tree, tmp_path):
    import msgspec
    import zmq

    from naive_mp import wire
    from naive_mp.core.state import TraderState
    prices = ["1.00000000"] * 20 + ["0.99990000"] * 10 + ["0.99980000"] * 100
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices)
    t = tree("--replay", tape, "--speed", "1", "--exit-at-end", *FILTERS)
    t.wait_for(lambda: (p := trader(t, 1)) and p["state"] == "SELL_PLACED")
    cached = msgspec.json.decode(msgspec.json.encode(ledger.traders(t.run_dir)[("TESTUSDT", 1)]), type=TraderState)
    ctx = zmq.Context()
    try:
        forger = ctx.socket(zmq.DEALER)
        forger.setsockopt(zmq.LINGER, 0)
        forger.setsockopt(zmq.IDENTITY, b"9")  # not a trader id the leader knows...
        forger.connect(wire.address(t.run_dir, "leader-TESTUSDT"))
        forged = msgspec.structs.replace(cached, phase="DONE")
        impostor = ctx.socket(zmq.DEALER)
        impostor.setsockopt(zmq.LINGER, 0)
        impostor.setsockopt(zmq.IDENTITY, b"1")  # ... and one it does
        impostor.connect(wire.address(t.run_dir, "leader-TESTUSDT"))
        time.sleep(0.2)
        for sock in (forger, impostor):
            sock.send(wire.encode(wire.Report(req_id=2**62, state=forged)))
        t.wait_for(lambda: "a report of DONE for #1 not believed: its SELL TESTUSDT-1-1-S is NEW" in t.log())
    finally:
        ctx.destroy(linger=0)
    assert ("TESTUSDT", 1) in ledger.traders(t.run_dir), "the trader is still followed"
    assert "trader TESTUSDT#1 finished its cycle" not in t.log()
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]
    assert [r["status"] for r in orders(t.run_dir) if r["client_order_id"] == "TESTUSDT-1-1-S"] == ["NEW"]
    assert ledger.invariant_errors(t.run_dir, chunks=5) == []
