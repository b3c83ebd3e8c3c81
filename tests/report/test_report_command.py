"""`naive-mp report FILE.html`: a run directory's orders and fills, prices from its tapes, as far as it went."""

import html
import re
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from naive_mp.backtest.run import run_backtest
from naive_mp.backtest.synth import write_synthetic_tape
from naive_mp.cli import main
from naive_mp.core.settings import Filters, Settings
from naive_mp.store import FeedRecord, RunCommand, RunRecord, Store

SYMBOL = "DEMOUSDT"
FILTERS = Filters(tick_size=D("0.00001"), step_size=D("0.1"), min_qty=D("0.1"), min_notional=D("1"))
SETTINGS = Settings(chunks=4)
FLAGS = ["--tick-size", "0.00001", "--step-size", "0.1", "--min-qty", "0.1", "--min-notional", "1", "--set",
         "chunks=4"]


def store_run(run_dir, tapes: list[str], traded: str) -> None:
    """A run directory as a lockstep replay of `tapes` leaves it after handling the trades of `traded`."""
    result = run_backtest([traded], [SYMBOL], {SYMBOL: SETTINGS}, {SYMBOL: FILTERS})
    summary = result.per_symbol[0]
    run_dir.mkdir()
    store = Store(run_dir, create=True)
    command = RunCommand(kind="replay", symbols=[SYMBOL], tapes=tapes, lockstep=True, settings={SYMBOL: SETTINGS},
                         filters={SYMBOL: FILTERS})
    store.begin_run(RunRecord(run_id=1, command=command, started_at=1.0))
    feed = FeedRecord(last_seq=summary.events, last_trade_id=int(result.tapes[0].ids[-1]),
                      last_price=summary.last_price)
    store.save_book(result.orders, result.fills, {}, {SYMBOL: feed})
    store.close()


def table_rows(page) -> list[list[str]]:
    text = page.read_text()
    return [[html.unescape(c) for c in re.findall(r'<td class="\w+">(.*?)</td>', row)]
            for row in re.findall(r"<tr>(<td.*?)</tr>", text)]


@pytest.fixture
def tapes(tmp_path):
    """A whole synthetic tape, and its first half as another file (what a replay stopped midway handled)."""
    whole = write_synthetic_tape(tmp_path, symbol=SYMBOL, trades=8000, seed=2)
    half = tmp_path / f"{SYMBOL}-trades-half.csv"
    half.write_text("".join(whole.read_text().splitlines(keepends=True)[:4000]))
    return whole, half


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_a_finished_runs_report_equals_backtests(tmp_path, tapes):
    whole, _ = tapes
    store_run(tmp_path / "run", [str(whole)], str(whole))
    out = cli("report", "--run-dir", tmp_path / "run", tmp_path / "run.html")
    assert out.exit_code == 0, out.output
    assert cli("backtest", whole, *FLAGS, "--report", tmp_path / "backtest.html").exit_code == 0
    assert table_rows(tmp_path / "run.html") == table_rows(tmp_path / "backtest.html")
    assert (tmp_path / "run.png").stat().st_size > 20_000
    assert "<title>naive-mp run: DEMOUSDT</title>" in (tmp_path / "run.html").read_text()


def test_a_run_stopped_midway_is_charted_to_where_it_stood(tmp_path, tapes):
    whole, half = tapes
    store_run(tmp_path / "run", [str(whole)], str(half))  # the tape is whole, the run handled its first half
    assert cli("report", "--run-dir", tmp_path / "run", tmp_path / "run.html", "--png", tmp_path / "p.png") \
        .exit_code == 0
    assert cli("backtest", half, *FLAGS, "--report", tmp_path / "half.html").exit_code == 0
    rows = table_rows(tmp_path / "run.html")
    assert rows == table_rows(tmp_path / "half.html") and rows[0][2] == "4,000"
    assert (tmp_path / "p.png").is_file() and not (tmp_path / "run.png").exists()


def test_report_says_what_is_missing(tmp_path):
    missing = cli("report", "--run-dir", tmp_path / "none", tmp_path / "r.html")
    assert missing.exit_code == 1 and "no run in" in missing.output
    run_dir = tmp_path / "live"
    run_dir.mkdir()
    store = Store(run_dir, create=True)
    store.begin_run(RunRecord(run_id=1, command=RunCommand(kind="live", symbols=[SYMBOL], settings={SYMBOL: SETTINGS},
                                                           filters={SYMBOL: FILTERS}), started_at=1.0))
    store.close()
    live = cli("report", "--run-dir", run_dir, tmp_path / "r.html")
    assert live.exit_code == 1 and "no tapes to take prices from" in live.output
    assert not (tmp_path / "r.html").exists()
