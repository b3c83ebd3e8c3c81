"""Free-running replay under random kill -9 of any process, the supervisor and the whole tree included."""

import os
import random
import signal
import time

import pytest

from ledger import invariant_errors, orders
from tree import Tree, alive, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]
ROLES = ("trader", "trader", "trader", "leader", "gateway", "streamer", "supervisor", "tree")


def wavy_tape(tmp_path, n=1000):
    """Prices that swing by 0.3-0.5% every 10 trades: BUYs fill, rebuys fire, SELLs fill, traders are replaced."""
    levels = ["1.0000", "0.9970", "0.9960", "1.0020"]
    prices = [levels[(i // 10) % 4] for i in range(n)]
    return write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=25)


def pick_victim(t: Tree, rng: random.Random):
    role = rng.choice(ROLES)
    if role in ("supervisor", "tree"):
        return role, t.proc.pid
    found = [p for p in t.processes(role) if p["pid"] > 0 and alive(p["pid"])]
    return (role, rng.choice(found)["pid"]) if found else (None, None)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_kills_never_duplicate_lose_or_overcommit(tmp_path, seed):
    rng = random.Random(seed)
    tape, run_dir = wavy_tape(tmp_path), tmp_path / "run"
    args = ("--replay", tape, "--speed", "2", "--exit-at-end", "--set", "rebuy_interval=0.001", *FILTERS)
    kills, trees = [], []
    t = Tree(run_dir, *args)
    trees.append(t)
    try:
        t.wait_for(lambda: t.processes("trader"), timeout=30)
        while t.proc.poll() is None and len(kills) < 14:
            time.sleep(rng.uniform(0.2, 0.6))
            role, pid = pick_victim(t, rng)
            if len(kills) == 4 and not any(k in ("supervisor", "tree") for k in kills):
                role, pid = "tree", t.proc.pid  # the draws depend on timing: one whole-tree kill whatever they are
            if role is None or t.proc.poll() is not None:
                continue
            if role == "tree":
                os.killpg(t.proc.pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            kills.append(role)
            if role in ("supervisor", "tree"):  # everything dies with it: the same start again
                t.proc.wait(10)
                errors = invariant_errors(run_dir, chunks=5)
                assert errors == [], f"after killing the {role}: {errors}"
                t = Tree(run_dir, *args)
                trees.append(t)
                t.wait_for(lambda: t.status(), timeout=30)
        code, _ = t.wait(timeout=120)
        assert code == 0, t.log()[-3000:]
    finally:
        for each in trees:
            each.kill_all()
    assert len(kills) >= 10, f"only {kills}"
    assert any(k in ("supervisor", "tree") for k in kills)
    assert invariant_errors(run_dir, chunks=5) == []
    assert len(orders(run_dir)) > 10, "the run traded"
    assert "Traceback" not in t.log()
