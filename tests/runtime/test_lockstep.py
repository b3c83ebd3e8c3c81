"""Lockstep replay through the whole process tree gives backtest's orders, byte for byte."""

import json

import pytest

from tree import naive_mp

CASES = [
    ("XRPUSDT-trades-2019-05-26.zip", ["--tick-size", "0.00001", "--step-size", "0.1", "--min-qty", "0.1",
                                       "--min-notional", "10"]),
    ("BTCUSDT-trades-2024-08-08-excerpt.csv", ["--tick-size", "0.01", "--step-size", "0.00001",
                                               "--min-qty", "0.00001", "--min-notional", "5"]),
]


@pytest.mark.parametrize("tape, filters", CASES, ids=[c[0].split("-")[0] for c in CASES])
def test_lockstep_orders_equal_backtest(tape, filters, tape_path, tmp_path):
    path = tape_path(tape)
    naive_mp("backtest", path, *filters, "--orders-out", tmp_path / "backtest.csv", check=True)
    result = naive_mp("start", "--replay", path, "--lockstep", "--exit-at-end", *filters,
                      "--run-dir", tmp_path / "run", "--orders-out", tmp_path / "lockstep.csv", "--json",
                      timeout=300, check=True)
    backtest = (tmp_path / "backtest.csv").read_bytes()
    assert backtest.count(b"\n") > 10, "the tape should produce orders"
    assert (tmp_path / "lockstep.csv").read_bytes() == backtest
    summary = json.loads(result.stdout)
    assert summary["lost_events"] == 0 and summary["events"] > 10_000
    in_run_dir = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert in_run_dir["max_traders"] == summary["max_traders"] == 5, "the run directory's summary counts traders"
    assert list((tmp_path / "run").glob("*.sock")) == []
