"""`naive-mp demo`, the README's main job: the process tree on a generated tape."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)], capture_output=True, text=True,
                          timeout=180)


def test_demo_runs_the_tree_and_matches_a_backtest_of_its_tape(tmp_path):
    demo = run("demo", "--trades", "4000", "--seed", "3", "--keep-tape", tmp_path, "-q")
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    (tape,) = tmp_path.glob("DEMOUSDT-trades-*.csv")
    assert len(tape.read_text().splitlines()) == 4000
    backtest = run("backtest", tape, "--tick-size", "0.00001", "--step-size", "0.1", "--min-qty", "0.1",
                   "--min-notional", "5")
    assert backtest.returncode == 0, backtest.stderr

    def rows(text):  # every line of the summary table but the elapsed time
        return [line for line in text.splitlines() if line and not line.startswith("elapsed")]

    assert rows(demo.stdout) == rows(backtest.stdout)
    assert "4,000" in demo.stdout and "CYCLES" in demo.stdout
