"""The settings sweep: grids, ranking, and every row equal to a plain backtest."""

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from naive_mp.backtest.synth import synthetic_filters, write_synthetic_tape
from naive_mp.cli import main
from naive_mp.core.settings import Settings
from naive_mp.report.sweep import GridError, combinations, parse_grid, ranked


@pytest.mark.parametrize("spec, expected", [
    (["chunks=3,5"], {"chunks": [3, 5]}),
    (["chunks=1:7:3"], {"chunks": [1, 4, 7]}),
    (["profit_target=0.001:0.003:0.001"], {"profit_target": [Decimal("0.001"), Decimal("0.002"), Decimal("0.003")]}),
    (["profit_target=0.001:0.0025:0.001"], {"profit_target": [Decimal("0.001"), Decimal("0.002")]}),
    (["fee=0.001,0.001"], {"fee": [Decimal("0.001")]}),
])
def test_grids_parse(spec, expected):
    assert parse_grid(spec) == expected


@pytest.mark.parametrize("spec, named", [
    (["speed=1,2"], "speed: unknown setting"),
    (["chunks=1,x"], "chunks"),
    (["chunks"], "expected KEY=V1"),
    (["chunks=5:1:1"], "STOP >= START"),
    (["chunks=1:5"], "START:STOP:STEP"),
    (["chunks=1,2", "chunks=3"], "given twice"),
    (["profit_target=0:1:0.0000001"], "more than"),
])
def test_bad_grids_are_named(spec, named):
    with pytest.raises(GridError, match=named):
        parse_grid(spec)


def test_a_combination_the_settings_refuse_is_named():
    with pytest.raises(GridError, match="chunks=0"):
        combinations({"X": Settings()}, {"chunks": [0, 1]})


def test_ranking_is_by_the_column_largest_first_ties_in_grid_order():
    rows = [{"realized_pnl": "1.5", "id": 1}, {"realized_pnl": "-2", "id": 2}, {"realized_pnl": "1.5", "id": 3}]
    assert [r["id"] for r in ranked(rows, "realized_pnl")] == [1, 3, 2]


def test_every_row_equals_a_plain_backtest(tmp_path):
    tape = write_synthetic_tape(tmp_path, symbol="DEMOUSDT", trades=6000, seed=5)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in synthetic_filters().items() if v is not None]
    runner = CliRunner()
    out = runner.invoke(main, ["sweep", str(tape), *flags, "--grid", "profit_target=-0.002,0.001,0.003",
                               "--grid", "chunks=2:4:2", "--json", "--workers", "2"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert len(rows) == 6 and sum(int(r["orders_placed"]) for r in rows) > 20
    pnl = [Decimal(r["realized_pnl"]) for r in rows]
    assert pnl == sorted(pnl, reverse=True)
    for row in rows:
        sets = [f"--set={k}={v}" for k, v in row["settings"].items()]
        plain = runner.invoke(main, ["backtest", str(tape), *flags, *sets, "--json"])
        expected = json.loads(plain.output)
        expected.pop("elapsed_s")
        assert {k: row[k] for k in expected} == expected, row["settings"]


def test_the_table_and_the_best_settings_to_paste(tmp_path):
    tape = write_synthetic_tape(tmp_path, symbol="DEMOUSDT", trades=3000, seed=2)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in synthetic_filters().items() if v is not None]
    out = CliRunner().invoke(main, ["sweep", str(tape), *flags, "--grid", "chunks=1,3", "--by", "cycles",
                                    "--csv", str(tmp_path / "rows.csv")])
    assert out.exit_code == 0, out.output
    assert "2 backtests of 1 tape(s)" in out.output and "[symbols.DEMOUSDT]" in out.output
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert lines[0].startswith("rank,chunks,realized_pnl") and len(lines) == 3
