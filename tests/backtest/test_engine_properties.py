"""Property tests of the backtester over random tapes and settings (hypothesis)."""

from decimal import Decimal as D

import numpy as np
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from naive_mp.backtest.engine import Backtest
from naive_mp.backtest.report import orders_csv
from naive_mp.data.tapes import Tape
from naive_mp.core.money import is_multiple
from naive_mp.core.settings import Filters, Settings

SYMBOL = "TESTUSDT"


def make_tape(prices_in_ticks, tick_decimals: int) -> Tape:
    prices = np.asarray(prices_in_ticks, dtype=np.int64)
    n = len(prices)
    return Tape(path="<generated>", symbol=SYMBOL, ids=np.arange(1000, 1000 + n, dtype=np.int64),
                prices=prices, price_decimals=tick_decimals,
                times_us=np.arange(n, dtype=np.int64) * 1000)


@st.composite
def scenarios(draw):
    tick_decimals = draw(st.sampled_from([2, 4, 5]))
    tick = D(1).scaleb(-tick_decimals)
    start_ticks = draw(st.integers(2_000, 200_000))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(20, 800))
    rng = np.random.default_rng(seed)
    volatility = draw(st.sampled_from([1, 3, 10, 40]))
    walk = np.cumsum(rng.integers(-volatility, volatility + 1, size=n))
    prices = np.maximum(start_ticks + walk, 1)
    strategy = Settings(
        chunks=draw(st.integers(1, 6)),
        budget=D(draw(st.sampled_from(["20", "100", "1000"]))),
        buy_down_interval=D(draw(st.sampled_from(["0", "0.0001", "0.001"]))),
        profit_target=D(draw(st.sampled_from(["-0.0012", "0", "0.0005", "0.002"]))),
        rebuy_interval=D(draw(st.sampled_from(["0.0002", "0.001", "0.003"]))),
        fee=D(draw(st.sampled_from(["0", "0.001"]))),
    )
    filters = Filters(tick_size=tick, step_size=D(draw(st.sampled_from(["0.001", "0.1", "1"]))),
                      min_qty=D(draw(st.sampled_from(["0", "0.001", "1"]))),
                      min_notional=D(draw(st.sampled_from(["0", "5", "10"]))))
    return make_tape(prices, tick_decimals), strategy, filters


def run(tape, strategy, filters, skip_quiet=True, quote_balance=None) -> Backtest:
    engine = Backtest({SYMBOL: strategy}, {SYMBOL: filters}, skip_quiet=skip_quiet,
                      quote_balance=quote_balance)
    engine.run_tape(tape)
    return engine


PROPERTY = hyp_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_orders_respect_grid_minimums_and_chunks(scenario):
    tape, strategy, filters = scenario
    engine = run(tape, strategy, filters)
    for order in engine.exchange.orders.values():
        assert is_multiple(order.price, filters.tick_size)
        assert is_multiple(order.quantity, filters.step_size)
        assert order.quantity >= filters.min_qty
        assert order.price * order.quantity >= filters.min_notional
    assert engine.symbols[SYMBOL].max_traders <= strategy.chunks


@PROPERTY
@given(scenarios())
def test_skipping_quiet_trades_changes_no_order(scenario):
    tape, strategy, filters = scenario
    fast = run(tape, strategy, filters, skip_quiet=True)
    full = run(tape, strategy, filters, skip_quiet=False)
    assert orders_csv(list(fast.exchange.orders.values())) == orders_csv(list(full.exchange.orders.values()))
    assert fast.symbols[SYMBOL].max_traders == full.symbols[SYMBOL].max_traders


@PROPERTY
@given(scenarios())
def test_same_tape_twice_gives_identical_orders(scenario):
    tape, strategy, filters = scenario
    first = orders_csv(list(run(tape, strategy, filters).exchange.orders.values()))
    assert first == orders_csv(list(run(tape, strategy, filters).exchange.orders.values()))


@PROPERTY
@given(scenarios())
def test_fills_follow_the_inclusive_rule_on_later_trades(scenario):
    tape, strategy, filters = scenario
    engine = run(tape, strategy, filters)
    price_of = {int(i): D(int(p)).scaleb(-tape.price_decimals) for i, p in zip(tape.ids, tape.prices)}
    for order in engine.exchange.orders.values():
        if order.filled_trade_id is None:
            continue
        assert order.filled_trade_id > order.placed_trade_id
        trade_price = price_of[order.filled_trade_id]
        assert trade_price <= order.price if order.side == "BUY" else trade_price >= order.price


@PROPERTY
@given(scenarios())
def test_paper_ledger_conserves_money(scenario):
    tape, strategy, filters = scenario
    start = D("1000000")
    engine = run(tape, strategy, filters, quote_balance=start)
    fills = engine.exchange.fills
    spent = sum((f.price * f.quantity for f in fills if f.side == "BUY"), D(0))
    received = sum((f.price * f.quantity for f in fills if f.side == "SELL"), D(0))
    fees = sum((f.fee for f in fills), D(0))
    wallet = engine.exchange.balances.get(SYMBOL)
    if wallet is None:
        assert not fills
        return
    assert wallet.quote + wallet.quote_reserved == start - spent + received - fees
    bought = sum((f.quantity for f in fills if f.side == "BUY"), D(0))
    sold = sum((f.quantity for f in fills if f.side == "SELL"), D(0))
    assert wallet.base + wallet.base_reserved == bought - sold
