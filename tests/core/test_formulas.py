from decimal import Decimal as D

import pytest

from naive_mp.core.formulas import plan_cycle, untradable_reason
from naive_mp.core.money import floor_to, fmt
from naive_mp.core.settings import Filters, Settings

BOOK = Settings()  # chapter 8 values
GRID_001 = Filters(tick_size=D("0.001"), step_size=D("0.001"))


@pytest.mark.parametrize("x, k, expected", [
    ("8.1759", "0.001", "8.175"),
    ("8.175", "0.001", "8.175"),        # already on the grid
    ("2.44648318", "0.001", "2.446"),
    ("0.43069999", "0.00001", "0.43069"),
    ("123.456", "0.1", "123.4"),
    ("123.456", "5", "120"),            # a grid that is not a power of ten
    ("0.00000099", "0.0000001", "0.0000009"),
])
def test_floor_to(x, k, expected):
    assert floor_to(D(x), D(k)) == D(expected)


@pytest.mark.parametrize("value, text", [
    ("0.00000010", "0.0000001"),        # str() of this Decimal is 1.0E-7
    ("1E-8", "0.00000001"),
    ("4.307E-1", "0.4307"),
    ("100", "100"),
    ("1E+2", "100"),
    ("2.4460", "2.446"),
    ("-0.0012", "-0.0012"),
    ("0E-8", "0"),
])
def test_fmt_never_writes_exponents(value, text):
    assert fmt(D(value)) == text


def test_book_worked_example():
    # strategy.md: a buy at 8.175 gets quantity 2.446 and sells at 8.181;
    # its rebuy threshold is 8.166825. Buy placed from a trade 1 tick-ish above.
    price = D("8.176")  # 8.176 - 8.176 * 0.0001 = 8.1751824 -> 8.175
    plan = plan_cycle(price, BOOK, GRID_001)
    assert plan.buy_price == D("8.175")
    assert plan.quantity == D("2.446")
    assert plan.sell_price == D("8.181")
    assert plan.rebuy_below == D("8.166825")


@pytest.mark.parametrize("price, settings, filters, bp, q, sp", [
    # XRP 2019 grid, chapter 8 settings
    ("0.43849", BOOK, Filters(tick_size=D("0.00001"), step_size=D("0.1")), "0.43844", "45.6", "0.43879"),
    # positive profit target: sell above buy * fees
    ("100.00", Settings(profit_target=D("0.01")), Filters(tick_size=D("0.01"), step_size=D("0.001")),
     "99.99", "0.2", "101.19"),
    # budget that chunks do not divide evenly: q = floor(33.33.../bp)
    ("1", Settings(budget=D("100"), chunks=3, buy_down_interval=D("0")), Filters(tick_size=D("0.01"), step_size=D("0.01")),
     "1", "33.33", "1"),
])
def test_plan_table(price, settings, filters, bp, q, sp):
    plan = plan_cycle(D(price), settings, filters)
    assert (plan.buy_price, plan.quantity, plan.sell_price) == (D(bp), D(q), D(sp))


def test_quantity_exact_at_grid_boundary():
    # budget/chunks/bp is exactly 3 steps: no rounding may lose one step
    s = Settings(budget=D("0.3"), chunks=1, buy_down_interval=D("0"))
    plan = plan_cycle(D("0.1"), s, Filters(tick_size=D("0.1"), step_size=D("1")))
    assert plan.quantity == D("3")


@pytest.mark.parametrize("filters, reason_part", [
    (Filters(tick_size=D("0.001"), step_size=D("0.001"), min_qty=D("3")), "minimum quantity"),
    (Filters(tick_size=D("0.001"), step_size=D("0.001"), min_notional=D("25")), "BUY order value"),
    (Filters(tick_size=D("0.001"), step_size=D("100")), "quantity 0"),
])
def test_untradable_reasons(filters, reason_part):
    plan = plan_cycle(D("8.176"), BOOK, filters)
    assert reason_part in untradable_reason(plan, filters)


def test_tradable_plan_has_no_reason():
    assert untradable_reason(plan_cycle(D("8.176"), BOOK, GRID_001), GRID_001) is None


def test_sell_under_min_notional_is_untradable():
    # a profit target low enough puts the SELL under the BUY, and under the minimum
    settings = Settings(profit_target=D("-0.01"))
    filters = Filters(tick_size=D("0.001"), step_size=D("0.001"), min_notional=D("19.9"))
    plan = plan_cycle(D("8.176"), settings, filters)
    assert plan.sell_price == D("8.109")
    assert "SELL order value 19.834614" in untradable_reason(plan, filters)
