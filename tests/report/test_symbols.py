"""Per-symbol report: currencies, win rate, unrealized P&L, ROI and the exact max drawdown."""

from decimal import Decimal as D

import numpy as np
import pytest

from naive_mp.backtest.report import Summary
from naive_mp.exchange.paper import Fill, Order
from naive_mp.report.symbols import PriceTrack, max_drawdown, report, split_symbol


@pytest.mark.parametrize("symbol, parts", [
    ("XRPUSDT", ("XRP", "USDT")), ("ETHBTC", ("ETH", "BTC")), ("BTCFDUSD", ("BTC", "FDUSD")),
    ("DEMOUSDT", ("DEMO", "USDT")), ("ABCXYZ", ("ABCXYZ", "?")),
])
def test_symbols_split_into_base_and_quote(symbol, parts):
    assert split_symbol(symbol) == parts


def track(prices: list[str], first_id=1) -> PriceTrack:
    t = PriceTrack(ids=[], prices=[], decimals=[])
    t.ids.append(np.arange(first_id, first_id + len(prices), dtype=np.int64))
    t.prices.append(np.array([int(D(p) * 100) for p in prices], dtype=np.int64))
    t.decimals.append(2)
    t.first_time_us, t.last_time_us = 1_559_347_200_000_000, 1_559_347_260_000_000
    return t


def test_max_drawdown_is_the_worst_fall_of_cash_plus_holdings_from_a_high():
    # buy 10 at 1.00 on trade 2 (fee 0.01); the price goes 1.00 -> 1.50 -> 0.70 -> 1.20; sell at 1.20 on trade 6
    prices = ["1.00", "1.00", "1.50", "0.70", "1.00", "1.20"]
    fills = [Fill(order_id=1, side="BUY", price=D("1.00"), quantity=D("10"), fee=D("0.01"), trade_id=2),
             Fill(order_id=2, side="SELL", price=D("1.20"), quantity=D("10"), fee=D("0.012"), trade_id=6)]
    # equity: 0, -0.01, 4.99 (high), -3.01 (low), -0.01, 1.978 -> drawdown 8.00 exactly
    assert max_drawdown(fills, track(prices)) == D("8.00")
    assert max_drawdown([], track(prices)) == 0


def test_report_counts_wins_values_holdings_and_returns_on_the_budget():
    orders = [Order(order_id=i, client_order_id=cid, symbol="XRPUSDT", trader_id=t, side=side, price=D(p),
                    quantity=D("10"), status=status)
              for i, (cid, t, side, p, status) in enumerate([
                  ("XRPUSDT-1-1-B", 1, "BUY", "1.00", "FILLED"), ("XRPUSDT-1-1-S", 1, "SELL", "1.10", "FILLED"),
                  ("XRPUSDT-2-1-B", 2, "BUY", "1.00", "FILLED"), ("XRPUSDT-2-1-S", 2, "SELL", "0.99", "FILLED"),
                  ("XRPUSDT-3-1-B", 3, "BUY", "0.90", "FILLED"), ("XRPUSDT-3-1-S", 3, "SELL", "1.50", "NEW")], 1)]
    summary = Summary(symbol="XRPUSDT", realized_pnl=D("0.9"), position_qty=D("10"), position_cost=D("9.0"),
                      last_price=D("0.80"))
    got = report(summary, orders, [], D("0"), D("100"), track(["1.00", "0.80"]))
    assert (got.base, got.quote, got.wins, got.win_rate) == ("XRP", "USDT", 1, D("0.5"))
    assert got.unrealized_pnl == D("-1.00") and got.roi == D("-0.001")
    assert (got.period_start, got.period_end) == ("2019-06-01T00:00:00Z", "2019-06-01T00:01:00Z")
