"""Hardening: input of the wrong shape or size is refused with a message, never a traceback or a hang."""

import os
import subprocess
import sys

import pytest

FILTERS = ["--tick-size", "0.00001", "--step-size", "0.1"]
TAPE = "XRPUSDT-trades-2019-06-01.csv"


def good_lines(n: int) -> str:
    return "".join(f"{i},0.43849000,10.00000000,4.38490000,{1559347200492 + i},True,True\n" for i in range(1, n + 1))


def naive_mp(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def tape(tmp_path):
    path = tmp_path / TAPE
    path.write_text(good_lines(3))
    return path


def refused(result, code, *phrases):
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


# --- 1. config files of the wrong shape ------------------------------------------------------

@pytest.mark.parametrize("toml, phrases", [
    ('settings = "oops"\n', ["[settings]", "must be a table"]),
    ("settings = [1, 2]\n", ["[settings]", "must be a table"]),
    ('symbols = "XRPUSDT"\n', ["[symbols]", "must be a table"]),
    ("[symbols]\nXRPUSDT = 5\n", ["[symbols.XRPUSDT]", "must be a table"]),
    ("[symbols]\nXRPUSDT = [1]\n", ["[symbols.XRPUSDT]", "must be a table"]),
    ("[symbols.X]\nXRPUSDT = [1]\n", ["[symbols.X]", "XRPUSDT", "a number or a string"]),
    ("[symbols.XRPUSDT]\nbudget = [1]\n", ["[symbols.XRPUSDT]", "budget", "a number or a string"]),
    ("[settings]\nchunks = {a = 1}\n", ["[settings]", "chunks", "a number or a string"]),
    ("binance = 3\n", ["[binance]", "must be a table"]),
])
def test_config_of_the_wrong_shape_names_file_and_key(tape, tmp_path, toml, phrases):
    config = tmp_path / "shape.toml"
    config.write_text(toml)
    refused(naive_mp("backtest", tape, *FILTERS, "--config", config), 2, "shape.toml", *phrases)


def test_binary_config_file_is_refused_by_name(tape, tmp_path):
    config = tmp_path / "binary.toml"
    config.write_bytes(b"\xff\xfe\x00\x01settings")
    refused(naive_mp("backtest", tape, *FILTERS, "--config", config), 2, "binary.toml", "UTF-8")


# --- 2. settings the system cannot carry ------------------------------------------------------

@pytest.mark.parametrize("args, phrases", [
    (["--set", "chunks=" + "9" * 30], ["chunks", "at most 1000"]),
    (["--set", "chunks=1001"], ["chunks", "at most 1000"]),
    (["--set", "budget=9e30", "--set", "chunks=1"], ["budget", "1E+18"]),
    (["--set", "profit_target=9e30"], ["profit_target", "1E+18"]),
    (["--tick-size", "1e-30"], ["tick_size", "1E-18"]),
])
def test_settings_beyond_what_the_system_carries_are_refused(tape, args, phrases):
    refused(naive_mp("backtest", tape, *FILTERS, *args), 2, *phrases)


def test_config_file_chunks_bound(tape, tmp_path):
    config = tmp_path / "big.toml"
    config.write_text("[settings]\nchunks = 100000000000000000000000000000\n")
    refused(naive_mp("backtest", tape, *FILTERS, "--config", config), 2, "big.toml", "chunks", "at most 1000")


# --- 3. start: what is accepted is bounded ------------------------------------------------------

@pytest.mark.parametrize("speed", ["1e-300", "0.0001", "1e7", "1e309", "nan"])
def test_start_speed_out_of_bounds_is_refused(tape, tmp_path, speed):
    result = naive_mp("start", "--replay", tape, *FILTERS, "--speed", speed, "--exit-at-end",
                      "--run-dir", tmp_path / "run")
    refused(result, 2, "--speed", "0.001", "1000000")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["start", "backtest"])
def test_a_fifo_tape_is_refused_not_waited_on(tmp_path, command):
    fifo = tmp_path / TAPE
    os.mkfifo(fifo)
    args = ["--replay", fifo, "--exit-at-end", "--run-dir", tmp_path / "run"] if command == "start" else [fifo]
    result = naive_mp(command, *args, *FILTERS, timeout=15)
    refused(result, 1, str(fifo), "not a regular file")


# --- 5. demo and unwritable outputs ------------------------------------------------------------

@pytest.mark.parametrize("args", [["--trades", "0"], ["--trades", "-5"], ["--trades", "1000000000000"],
                                  ["--seed", "-1"]])
def test_demo_numbers_out_of_range_exit_2(args):
    refused(naive_mp("demo", *args), 2, args[0])


def test_orders_out_in_proc_is_a_message(tape):
    refused(naive_mp("backtest", tape, *FILTERS, "--orders-out", "/proc/version"), 2, "/proc/version")
