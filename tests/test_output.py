"""--orders-out: regular files replaced atomically, everything else written as it is, errors said."""

import os
import stat
import subprocess
import sys
import threading

import pytest

FILTERS = ["--tick-size", "0.00001", "--step-size", "0.1"]
HEADER = "order_id,client_order_id,symbol,trader_id,side,price,quantity,status,placed_trade_id,filled_trade_id"


def naive_mp(*args, umask=None, cwd=None, timeout=60):
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=preexec, cwd=cwd)


@pytest.fixture
def tape(tmp_path):
    path = tmp_path / "XRPUSDT-trades-2019-06-01.csv"
    path.write_text("".join(f"{i},0.{43849000 - i * 1000},10.00000000,4.38490000,{1559347200492 + i},True,True\n"
                            for i in range(1, 40)))
    return path


def backtest(tape, out, **kw):
    return naive_mp("backtest", tape, *FILTERS, "--orders-out", out, cwd=tape.parent, **kw)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_new_and_existing_files_get_the_umask_not_0600(tape, tmp_path):
    out = tmp_path / "orders.csv"
    ok(backtest(tape, out, umask=0o022))
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert out.read_text().startswith(HEADER)
    ok(backtest(tape, out, umask=0o027))  # replaced: the mode is the umask's again
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".orders")] == []


def test_a_symlink_stays_a_link_and_its_target_is_written(tape, tmp_path):
    target = tmp_path / "results" / "orders-v3.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "orders.csv"
    link.symlink_to(target)
    ok(backtest(tape, link))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith(HEADER)


def test_a_dangling_symlink_creates_its_target(tape, tmp_path):
    link = tmp_path / "orders.csv"
    link.symlink_to(tmp_path / "new.csv")
    ok(backtest(tape, link))
    assert link.is_symlink() and (tmp_path / "new.csv").read_text().startswith(HEADER)


def test_a_fifo_is_written_to_and_stays_a_fifo(tape, tmp_path):
    fifo = tmp_path / "orders.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    ok(backtest(tape, fifo))
    reader.join(10)
    assert got and got[0].startswith(HEADER)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_full_device_is_a_message_and_exit_1_and_stays_a_device(tape, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    full = tmp_path / "full"  # our own /dev/full: the machine's is never put at risk
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    result = backtest(tape, full)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot write {full}" in result.stderr and "No space left on device" in result.stderr
    assert stat.S_ISCHR(full.stat().st_mode)


def test_a_null_device_is_written_in_place(tape, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    null = tmp_path / "null"  # like /dev/null, which a test must never risk
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    ok(backtest(tape, null))
    assert stat.S_ISCHR(null.stat().st_mode)


def test_dash_is_standard_output(tape, tmp_path):
    result = naive_mp("backtest", tape, *FILTERS, "--orders-out", "-", "--json", cwd=tmp_path)
    ok(result)
    assert result.stdout.startswith(HEADER + "\n")
    assert '"events": 39' in result.stdout.splitlines()[-1]
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("target, phrase", [("/proc/version", "/proc"), ("/proc/nope/orders.csv", "does not exist")])
def test_unwritable_targets_are_refused_before_any_work(tape, target, phrase):
    result = backtest(tape, target)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and phrase in result.stderr and "--orders-out" in result.stderr


def test_write_output_unit(tmp_path, capsys):
    from naive_mp.commands.output import write_output

    write_output("-", "a,b\n")
    assert capsys.readouterr().out == "a,b\n"
    write_output(str(tmp_path / "x.csv"), "x\n")
    assert (tmp_path / "x.csv").read_text() == "x\n"


def test_start_writes_through_the_same_function(tape, tmp_path):
    """start's --orders-out at exit: `-` is stdout there too, and a symlink stays a link."""
    target = tmp_path / "orders-target.csv"
    link = tmp_path / "orders.csv"
    link.symlink_to(target)
    runs = []
    for out in ("-", link):
        proc = subprocess.Popen([sys.executable, "-m", "naive_mp", "start", "--replay", str(tape), *FILTERS,
                                 "--lockstep", "--exit-at-end", "--json", "--orders-out", str(out),
                                 "--run-dir", str(tmp_path / "run"), "--fresh"],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        assert proc.returncode == 0, stderr[-3000:]
        runs.append(stdout)
    assert runs[0].startswith(HEADER + "\n") and '"events": 39' in runs[0].splitlines()[-1]
    assert not (tmp_path / "-").exists()
    assert link.is_symlink() and target.read_text() == runs[0][:runs[0].rindex("\n{") + 1]


def test_sweep_csv_goes_through_the_same_function(tape, tmp_path):
    result = naive_mp("sweep", tape, *FILTERS, "--grid", "chunks=1,2", "--workers", "1", "--json", "--csv", "-",
                      cwd=tmp_path)
    ok(result)
    assert result.stdout.startswith("rank,chunks,") and not (tmp_path / "-").exists()
    if os.geteuid() == 0:
        full = tmp_path / "full"
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        result = naive_mp("sweep", tape, *FILTERS, "--grid", "chunks=1,2", "--workers", "1", "--csv", full)
        assert result.returncode == 1 and "--csv: cannot write" in result.stderr and "Traceback" not in result.stderr
        assert stat.S_ISCHR(full.stat().st_mode)
