"""Bad input gets a clear message and exit status, never a traceback (real subprocesses)."""

import subprocess
import sys

import pytest

GOOD_LINE = "1,0.43849000,10.00000000,4.38490000,1559347200492,True,True\n"


def good_lines(n: int) -> str:
    return "".join(f"{i},0.43849000,10.00000000,4.38490000,1559347200492,True,True\n" for i in range(1, n + 1))
FILTERS = ["--tick-size", "0.00001", "--step-size", "0.1"]


def naive_mp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


@pytest.fixture
def tape(tmp_path):
    def write(text, name="XRPUSDT-trades-2019-06-01.csv"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.mark.parametrize("args, code, message", [
    (["--set", "colour=blue"], 2, "colour: unknown setting"),
    (["--set", "budget=-5"], 2, "budget: must be > 0"),
    (["--set", "chunks=two"], 2, "chunks: must be a whole number"),
    (["--set", "fee"], 2, "expected KEY=VALUE"),
    (["--tick-size", "0"], 2, "tick_size: must be > 0"),
])
def test_bad_settings_exit_2_naming_the_key(tape, args, code, message):
    result = naive_mp("backtest", tape(good_lines(3)), *FILTERS, *args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_tick_size_is_named(tape):
    result = naive_mp("backtest", tape(GOOD_LINE), "--step-size", "0.1")
    assert result.returncode == 2
    assert "no tick_size" in result.stderr and "--tick-size" in result.stderr


def test_missing_min_notional_counts_as_zero_and_says_so(tape):
    result = naive_mp("backtest", tape(good_lines(3)), *FILTERS)
    assert result.returncode == 0
    assert "no min_notional given, counting it as 0" in result.stderr


@pytest.mark.parametrize("text, message", [
    (GOOD_LINE + "2,abc,1,1,1559347200493,True,True\n", ":2:"),
    (GOOD_LINE + "2,0.43849000,1,1559347200493,True,True\n", ":2:"),
    (good_lines(2) + "3,0.43849000,1,1,1559347200493,maybe,True\n", ":3:"),
    ("", "no trades"),
])
def test_malformed_tapes_exit_1_naming_file_and_line(tape, tmp_path, text, message):
    out = tmp_path / "orders.csv"
    result = naive_mp("backtest", tape(text), *FILTERS, "--orders-out", out)
    assert result.returncode == 1
    assert "XRPUSDT-trades-2019-06-01.csv" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing half-written


def test_missing_tape_file(tmp_path):
    result = naive_mp("backtest", tmp_path / "XRPUSDT-trades-2019-06-01.zip", *FILTERS)
    assert result.returncode == 1 and "XRPUSDT-trades-2019-06-01.zip" in result.stderr
    assert "Traceback" not in result.stderr


def test_symbol_needed_when_file_name_has_none(tape):
    result = naive_mp("backtest", tape(GOOD_LINE, name="trades.csv"), *FILTERS)
    assert result.returncode == 2 and "--symbol" in result.stderr
    assert naive_mp("backtest", tape(GOOD_LINE, name="trades.csv"), *FILTERS, "--symbol", "xrpusdt").returncode == 0


@pytest.mark.parametrize("toml, message", [
    ("[settings]\nchunks = 0\n", "[settings]: chunks: must be at least 1"),
    ("[settings\n", "is not valid TOML"),
    ("[symbols.XRPUSDT]\ntick_size = \"0.00001\"\nbudget = \"-1\"\n", "[symbols.XRPUSDT]: budget"),
    ("[wat]\n", "unknown table(s) wat"),
])
def test_bad_config_file_names_file_and_key(tape, tmp_path, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = naive_mp("backtest", tape(GOOD_LINE), *FILTERS, "--config", config)
    assert result.returncode == 2
    assert message in result.stderr and "bad.toml" in result.stderr


def test_config_file_supplies_filters_and_settings(tape, tmp_path):
    config = tmp_path / "ok.toml"
    config.write_text('[settings]\nchunks = 2\n[symbols.XRPUSDT]\ntick_size = "0.00001"\nstep_size = 0.1\n')
    result = naive_mp("backtest", tape(good_lines(3)), "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    assert '"events": 3' in result.stdout


def test_unwritable_orders_out_is_refused_before_any_work(tape, tmp_path):
    result = naive_mp("backtest", tape(good_lines(3)), *FILTERS, "--orders-out", tmp_path / "nope" / "o.csv")
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--set", "budget=1e999999"], "budget: 1E+999999 is out of range"),
    (["--tick-size", "nan"], "tick_size: 'nan' is not a finite number"),
])
def test_absurd_numbers_are_refused_by_name(tape, args, message):
    result = naive_mp("backtest", tape(good_lines(3)), *FILTERS, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_start_reports_a_malformed_tape_before_forking(tape, tmp_path):
    bad = tape(good_lines(2) + "3,abc,1,1,1559347200493,True,True\n")
    result = naive_mp("start", "--replay", bad, *FILTERS, "--exit-at-end", "--run-dir", tmp_path / "run")
    assert result.returncode == 1 and ":3: price 'abc'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_symbols_with_different_fees_are_refused(tmp_path):
    config = tmp_path / "fees.toml"
    config.write_text('[symbols.AAAUSDT]\nfee = "0.002"\n')
    a = tmp_path / "AAAUSDT-trades-2024-01-01.csv"
    b = tmp_path / "BBBUSDT-trades-2024-01-01.csv"
    a.write_text(good_lines(2))
    b.write_text(good_lines(2))
    result = naive_mp("backtest", a, b, *FILTERS, "--config", config)
    assert result.returncode == 2 and "fee:" in result.stderr and "Traceback" not in result.stderr
