"""The synthetic demo tape: deterministic, exact, in the Binance layout, and tradable."""

import csv
import re
from decimal import Decimal

import numpy as np
import pytest

from naive_mp.backtest.synth import synthetic_filters, write_synthetic_tape
from naive_mp.data.tapes import read_tape, symbol_from_path

FIELD_8DP = re.compile(r"[0-9]+\.[0-9]{8}\Z")


@pytest.fixture(scope="module")
def default_tape(tmp_path_factory):
    return write_synthetic_tape(tmp_path_factory.mktemp("synth") / "DEMOUSDT-trades-2023-11-14.csv")


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_synthetic_tape(tmp_path / "a.csv", trades=3000, seed=11).read_bytes()
    b = write_synthetic_tape(tmp_path / "b.csv", trades=3000, seed=11).read_bytes()
    c = write_synthetic_tape(tmp_path / "c.csv", trades=3000, seed=12).read_bytes()
    assert a == b
    assert a != c
    assert a.count(b"\n") == 3000


def test_binance_layout(default_tape):
    lines = default_tape.read_bytes().split(b"\n")
    assert lines[-1] == b"" and b"\r" not in default_tape.read_bytes()  # LF, final newline
    table = rows(default_tape)
    assert len(table) == 20_000
    for row in table:
        assert len(row) == 7
        assert all(FIELD_8DP.match(field) for field in row[1:4]), row
        assert row[5] in ("True", "False") and row[6] == "True"
    ids = [int(row[0]) for row in table]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous


def test_prices_sizes_and_quote_are_exact(default_tape):
    filters = synthetic_filters()
    tick, step = Decimal(filters["tick_size"]), Decimal(filters["step_size"])
    for row in rows(default_tape):
        price, qty, quote = Decimal(row[1]), Decimal(row[2]), Decimal(row[3])
        assert price > 0 and price % tick == 0, row
        assert qty >= step and qty % step == 0, row
        assert price * qty == quote, row


def test_reads_back_through_read_tape(default_tape):
    tape = read_tape(default_tape)
    assert len(tape) == 20_000 and tape.symbol == "DEMOUSDT"
    assert tape.price_decimals == 8 and tape.price(0) == Decimal("0.50000000")
    assert tape.times_us[0] == 1_700_000_000_000_000
    gaps = np.diff(tape.times_us)
    assert (gaps >= 0).all() and (gaps % 1000 == 0).all()
    assert 0.1 < (gaps == 0).mean() < 0.5  # several trades share a millisecond, not most


def test_looks_like_a_market(default_tape):
    table = rows(default_tape)
    makers = [row[5] == "True" for row in table]
    assert 0.3 < sum(makers) / len(makers) < 0.7
    qty = np.array([float(row[2]) for row in table])
    assert qty.max() > 20 * np.median(qty)  # heavy tail
    moves = np.abs(np.diff(read_tape(default_tape).prices))
    # Volatility clusters: the busiest thousand trades move far more than the calmest.
    per_thousand = moves[: len(moves) // 1000 * 1000].reshape(-1, 1000).sum(axis=1)
    assert per_thousand.max() > 2 * per_thousand.min()


def swings(prices, threshold):
    """(rises, falls) of at least `threshold` from the last turning point: a zigzag."""
    rises = falls = 0
    rising, extreme = False, prices[0]  # first look for a rise from the lowest price
    for p in prices:
        if not rising and p >= extreme * (1 + threshold):
            rises, rising, extreme = rises + 1, True, p
        elif rising and p <= extreme * (1 - threshold):
            falls, rising, extreme = falls + 1, False, p
        else:
            extreme = max(extreme, p) if rising else min(extreme, p)
    return rises, falls


def test_price_swings_both_ways_by_a_tenth_of_a_percent(default_tape):
    rises, falls = swings(read_tape(default_tape).prices.tolist(), 0.001)
    assert rises >= 10 and falls >= 10


def test_chapter_8_strategy_completes_cycles_and_rebuys(default_tape):
    from naive_mp.backtest.run import run_backtest
    from naive_mp.core.settings import Filters, Settings

    settings = Settings(budget=Decimal("100"), chunks=5, buy_down_interval=Decimal("0.0001"),
                        profit_target=Decimal("-0.0012"), rebuy_interval=Decimal("0.001"),
                        fee=Decimal("0.001"))
    filters = Filters(**{k: Decimal(v) for k, v in synthetic_filters().items()})
    summary = run_backtest([str(default_tape)], ["DEMOUSDT"], {"DEMOUSDT": settings},
                           {"DEMOUSDT": filters}).summary
    assert summary.cycles >= 10
    assert summary.max_traders >= 3  # rebuys happened


def test_filters():
    assert synthetic_filters() == {"tick_size": "0.00001", "step_size": "0.1", "min_qty": "0.1",
                                   "min_notional": "5"}


def test_directory_gets_a_binance_file_name(tmp_path):
    path = write_synthetic_tape(tmp_path, symbol="FAKEUSDT", trades=10)
    assert path == tmp_path / "FAKEUSDT-trades-2023-11-14.csv"
    assert symbol_from_path(path) == "FAKEUSDT" and len(read_tape(path)) == 10


def test_other_grids(tmp_path):
    path = write_synthetic_tape(tmp_path / "BTCUSDT-trades-x.csv", trades=2000, seed=3,
                                start_price="61837.63", tick="0.01", step="0.00001")
    for row in rows(path):
        price, qty, quote = Decimal(row[1]), Decimal(row[2]), Decimal(row[3])
        assert price % Decimal("0.01") == 0 and qty % Decimal("0.00001") == 0
        assert price * qty == quote


def test_price_stays_positive_near_zero(tmp_path):
    path = write_synthetic_tape(tmp_path / "t.csv", start_price="0.00005", seed=5)
    assert read_tape(path, "DEMOUSDT").prices.min() > 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"trades": 0}, "trades must be at least 1"),
        ({"start_price": "0.500001"}, "start_price 0.500001 is not a multiple of tick"),
        ({"start_price": "0.123456789"}, "start_price must be positive with at most 8 decimals"),
        ({"start_price": "-1"}, "start_price must be positive"),
        ({"tick": "0"}, "tick must be positive"),
        ({"step": "abc"}, "step 'abc' is not a decimal number"),
        ({"tick": "0.0001", "step": "0.00001", "start_price": "1"}, "more than 8 decimals"),
    ],
)
def test_bad_parameters(tmp_path, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        write_synthetic_tape(tmp_path / "t.csv", **kwargs)
