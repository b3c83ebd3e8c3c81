"""A run resumes after any kill: the whole tree, stop and start, a different command refused."""

import os
import signal
import sqlite3
import time

import pytest

from ledger import invariant_errors, order_count
from tree import Tree, naive_mp

FILTERS = ["--tick-size", "0.00001", "--step-size", "0.1", "--min-qty", "0.1", "--min-notional", "10"]
TAPE = "XRPUSDT-trades-2019-06-01.zip"


@pytest.fixture
def reference(tape_path, tmp_path):
    """The tape and backtest's orders file for it (what every lockstep run must end with)."""
    path = tape_path(TAPE)
    naive_mp("backtest", path, *FILTERS, "--orders-out", tmp_path / "backtest.csv", check=True)
    return path, (tmp_path / "backtest.csv").read_bytes()


def dump(run_dir) -> list[str]:
    conn = sqlite3.connect(f"file:{run_dir / 'state.db'}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def lockstep(run_dir, tape, *more):
    return Tree(run_dir, "--replay", tape, "--lockstep", "--exit-at-end", *FILTERS, *more)


def interrupt(run_dir, tape, orders: int, how) -> None:
    """A lockstep run of `tape`, ended by `how(tree)` once the store holds `orders` orders."""
    t = lockstep(run_dir, tape)
    try:
        t.wait_for(lambda: order_count(run_dir) >= orders, timeout=60, every=0.005)
        how(t)
    finally:
        t.kill_all()


def kill_tree(t: Tree) -> None:
    """kill -9 of the whole process group (a power cut, as far as the run can tell)."""
    os.killpg(t.proc.pid, signal.SIGKILL)
    t.proc.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(t.proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)


def test_whole_tree_killed_at_many_points_resumes_to_backtests_orders(reference, tmp_path):
    tape, expected = reference
    run_dir = tmp_path / "run"
    kill_points = []
    target = 3
    for attempt in range(40):
        t = lockstep(run_dir, tape)
        try:  # kill -9 the whole process group once the store holds `target` orders
            t.wait_for(lambda: order_count(run_dir) >= target or t.proc.poll() is not None,
                       timeout=60, every=0.005)
            if t.proc.poll() is not None:
                break
            kill_tree(t)
        finally:
            t.kill_all()
        kill_points.append(order_count(run_dir))
        assert invariant_errors(run_dir, chunks=5) == [], f"after kill {len(kill_points)}"
        target = kill_points[-1] + 9
    assert t.proc.returncode == 0, t.log()[-3000:]
    assert len(set(kill_points)) >= 10, f"killed at {kill_points}"
    assert (run_dir / "orders.csv").read_bytes() == expected
    assert invariant_errors(run_dir, chunks=5) == []
    assert t.log().count("resuming the run started") >= 10


def test_stop_then_the_same_start_gives_the_uninterrupted_orders(reference, tmp_path):
    tape, expected = reference
    run_dir = tmp_path / "run"
    def stop(t: Tree) -> None:
        naive_mp("stop", "--run-dir", run_dir, check=True)
        assert t.wait(timeout=60)[0] == 0
    interrupt(run_dir, tape, 40, stop)
    stopped_at = order_count(run_dir)
    assert 40 <= stopped_at < expected.count(b"\n") - 1, "stopped before the end"
    naive_mp("start", "--replay", tape, "--lockstep", "--exit-at-end", *FILTERS, "--run-dir", run_dir,
             "--orders-out", tmp_path / "resumed.csv", check=True, timeout=120)
    assert (tmp_path / "resumed.csv").read_bytes() == expected


def test_a_different_command_is_refused_and_fresh_archives_the_run(reference, tmp_path):
    tape, expected = reference
    run_dir = tmp_path / "run"
    interrupt(run_dir, tape, 20, kill_tree)
    before = dump(run_dir)
    refused = naive_mp("start", "--replay", tape, "--lockstep", "--exit-at-end", *FILTERS, "--set", "chunks=3",
                       "--run-dir", run_dir)
    assert refused.returncode == 1
    assert "holds an unfinished run" in refused.stderr and TAPE in refused.stderr and "--fresh" in refused.stderr
    assert dump(run_dir) == before, "a refused start changed nothing"
    naive_mp("start", "--replay", tape, "--lockstep", "--exit-at-end", *FILTERS, "--run-dir", run_dir,
             "--fresh", "--orders-out", tmp_path / "fresh.csv", check=True, timeout=120)
    assert (tmp_path / "fresh.csv").read_bytes() == expected, "a fresh run's trader ids start at 1"
    assert len(list((run_dir / "archive").glob("run-*.db"))) == 1
    # a finished replay is archived by the next start, which begins anew
    naive_mp("start", "--replay", tape, "--lockstep", "--exit-at-end", *FILTERS, "--run-dir", run_dir,
             "--orders-out", tmp_path / "again.csv", check=True, timeout=120)
    assert (tmp_path / "again.csv").read_bytes() == expected
    assert len(list((run_dir / "archive").glob("run-*.db"))) == 2
    listed = naive_mp("orders", "XRPUSDT", "--run-dir", run_dir, check=True)
    assert listed.stdout.encode() == expected
