"""`naive-mp status --watch` in a real terminal (tmux, 80 columns): refreshed, readable, and it ends."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from tree import Tree, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


def need_tmux() -> str:
    path = shutil.which("tmux")
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("tmux is missing: .ci/run installs it")
    pytest.skip("tmux is not installed")


def screen(session: str) -> list[str]:
    out = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True)
    return out.stdout.splitlines()


def test_watch_redraws_the_tree_within_80_columns_and_ends_with_the_run(tmp_path):
    need_tmux()
    prices = [f"{1 - 0.0015 * (i // 6):.8f}" for i in range(48)] + ["0.98950000"] * 400
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=25)
    run_dir = tmp_path / "run"
    t = Tree(run_dir, "--replay", tape, "--speed", "1", "--exit-at-end", *FILTERS)
    session = f"watch{os.getpid()}"
    try:
        t.wait_for(lambda: len(t.processes("trader")) == 5, timeout=30)
        command = f"{sys.executable} -m naive_mp status --watch --interval 0.3 --run-dir {run_dir}; sleep 30"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True)
        first = t.wait_for(lambda: (s := screen(session)) and any("trader" in line for line in s) and s)
        # A shared CI machine may stall a redraw for a while: wait for the clock, do not sleep a fixed time.
        second = t.wait_for(lambda: (s := screen(session)) and s[0] != first[0] and s, timeout=10)
        assert second and second[0] != first[0], "the clock line moves: the view refreshes"
        assert all(len(line) <= 80 for line in first + second)
        traders = [line for line in second if line.startswith("trader")]
        assert len(traders) == 5 and all("SELL_PLACED" in line or "BUY_PLACED" in line for line in traders)
        if len(f"naive-mp on {run_dir}: 9 processes") > 80:
            assert any(line.startswith("…") and "processes" in line for line in second), "the header is cut to fit"
        code, _ = t.wait(timeout=60)
        assert code == 0
        deadline = time.monotonic() + 10
        while not any("the run stopped" in line for line in screen(session)):
            assert time.monotonic() < deadline, f"watch did not end with the run: {screen(session)}"
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        t.kill_all()
