"""The whole tree as a user sees it: status, process titles, rebuys, stop."""

import os
import signal
import time

import pytest

from tree import Tree, alive, cmdline, naive_mp, write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


@pytest.fixture
def running(tmp_path):
    # a falling price: every dip under a buy price asks for a rebuy (rebuy_interval=0)
    prices = [f"{1 - 0.0001 * i:.8f}" for i in range(600)]
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=20)
    t = Tree(tmp_path / "run", "--replay", tape, "--speed", "1", "--set", "rebuy_interval=0",
             "--set", "chunks=3", *FILTERS)
    yield t
    t.kill_all()


def test_status_lists_every_role_and_ps_shows_titles(running):
    t = running
    status = t.wait_for(lambda: (s := t.status()) and len([p for p in s["processes"] if p["role"] == "trader"]) == 3 and s)
    roles = {p["role"] for p in status["processes"]}
    assert roles == {"streamer", "gateway", "leader", "trader"}
    assert status["supervisor"]["pid"] == t.proc.pid
    assert cmdline(t.proc.pid) == "naive-mp: supervisor"
    for p in status["processes"]:
        title = cmdline(p["pid"])
        if p["role"] == "trader":
            assert title.startswith(f"naive-mp: trader TESTUSDT#{p['trader_id']} ")
            assert title.split()[-1] in ("NEW", "BUY_PLACED", "SELL_PLACED")
        else:
            assert title == {"streamer": "naive-mp: streamer", "gateway": "naive-mp: gateway paper",
                             "leader": "naive-mp: leader TESTUSDT"}[p["role"]]
    table = naive_mp("status", "--run-dir", t.run_dir).stdout
    assert "trader" in table and "TESTUSDT" in table


def test_rebuys_never_exceed_chunks(running):
    t = running
    t.wait_for(lambda: len(t.processes("trader")) == 3)
    for _ in range(10):
        assert len(t.processes("trader")) <= 3
        time.sleep(0.2)
    assert "all traders already started for TESTUSDT" in t.log()


def test_stop_leaves_no_process_and_no_socket(running):
    t = running
    status = t.wait_for(lambda: (s := t.status()) and any(p["role"] == "trader" for p in s["processes"]) and s)
    pids = [p["pid"] for p in status["processes"]] + [t.proc.pid]
    result = naive_mp("stop", "--run-dir", t.run_dir, timeout=60)
    assert result.returncode == 0, result.stderr
    t.proc.wait(30)
    assert not [pid for pid in pids if alive(pid)]
    assert sorted(p.name for p in t.run_dir.iterdir() if p.suffix in (".sock", ".pid")) == []
    assert naive_mp("status", "--run-dir", t.run_dir).returncode == 1


def test_sigterm_leaves_no_process_and_no_socket(running):
    t = running
    status = t.wait_for(lambda: (s := t.status()) and any(p["role"] == "trader" for p in s["processes"]) and s)
    pids = [p["pid"] for p in status["processes"]]
    os.kill(t.proc.pid, signal.SIGTERM)
    assert t.proc.wait(30) == 0
    assert not [pid for pid in pids if alive(pid)]
    assert list(t.run_dir.glob("*.sock")) == []


def test_second_start_on_the_same_run_dir_is_refused(running, tmp_path):
    t = running
    t.wait_for(lambda: t.status())
    tape = write_tape(tmp_path / "OTHERUSDT-trades-2024-01-01.csv", ["1.00000000"] * 3)
    result = naive_mp("start", "--replay", tape, *FILTERS, "--run-dir", t.run_dir, timeout=30)
    assert result.returncode == 1
    assert "another naive-mp supervisor" in result.stderr and str(t.proc.pid) in result.stderr


def test_rogue_frames_are_named_and_dropped(running):
    import zmq

    t = running
    t.wait_for(lambda: len(t.processes("trader")) >= 1)
    gateway_pid = t.processes("gateway")[0]["pid"]
    ctx = zmq.Context()
    try:
        for name, kind in (("gateway", zmq.DEALER), ("acks", zmq.PUSH)):
            sock = ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 1000)
            sock.connect(f"ipc://{t.run_dir / (name + '.sock')}")
            sock.send(b"\x93not a message")
            sock.close()
    finally:
        ctx.term()
    t.wait_for(lambda: "rogue message on the gateway socket" in t.log()
               and "rogue message on the acks socket" in t.log())
    time.sleep(0.5)
    assert alive(gateway_pid) and t.processes("gateway")[0]["pid"] == gateway_pid


def test_a_max_speed_replay_runs_clean(tmp_path):
    """Traders start while batches pour in: a welcome queued with them must not crash one."""
    prices = [f"{1 + 0.0001 * ((i // 50) % 9 - 4):.8f}" for i in range(100_000)]
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=1)
    result = naive_mp("start", "--replay", tape, "--exit-at-end", "--set", "rebuy_interval=0", *FILTERS,
                      "--run-dir", tmp_path / "run", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "run" / "naive-mp.log").read_text()
    assert "CRITICAL" not in log and "Traceback" not in log
