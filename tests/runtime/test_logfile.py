"""The run's log: JSON lines for shippers, and a new file when logrotate moves the old one away."""

import json
import os

from tree import Tree, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


def test_json_lines_and_a_log_moved_away_is_written_anew(tmp_path):
    prices = ["1.00000000"] * 30 + ["0.99990000"] * 10 + ["1.00060000"] * 60
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices)
    t = Tree(tmp_path / "run", "--replay", tape, "--speed", "1", "--exit-at-end", "--log-format", "json", *FILTERS)
    try:
        t.wait_for(lambda: t.processes("trader"))
        log = tmp_path / "run" / "naive-mp.log"
        os.rename(log, tmp_path / "naive-mp.log.1")  # what logrotate does (without copytruncate)
        code, _ = t.wait(timeout=60)
        assert code == 0
    finally:
        t.kill_all()
    old = (tmp_path / "naive-mp.log.1").read_text().splitlines()
    new = log.read_text().splitlines()
    assert old and new, "lines before the move stay in the old file, later ones go to a new one"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    records = [json.loads(line) for line in old + new]
    assert {"time", "level", "process", "pid", "logger", "message"} <= set(records[0])
    processes = {r["process"] for r in records}
    assert "supervisor" in processes and any(p.startswith("trader TESTUSDT#1") for p in processes)
    assert any("supervisor stopped" in r["message"] for r in (json.loads(x) for x in new))
