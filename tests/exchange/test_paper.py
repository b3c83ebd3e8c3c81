from decimal import Decimal as D

import pytest

from naive_mp.core.messages import PlaceOrder
from naive_mp.exchange.paper import ExchangeRefused, PaperExchange
from naive_mp.core.settings import Filters

FILTERS = {"XRPUSDT": Filters(tick_size=D("0.00001"), step_size=D("0.1"), min_qty=D("0.1"),
                              min_notional=D("10"))}


def order(side, price, qty="100", cid=None, trader_id=1):
    return PlaceOrder(client_order_id=cid or f"XRPUSDT-{trader_id}-1-{side[0]}", symbol="XRPUSDT",
                      trader_id=trader_id, side=side, price=D(price), quantity=D(qty))


@pytest.fixture
def ex():
    return PaperExchange(FILTERS, D("0.001"))


@pytest.mark.parametrize("side, price, qty, code, message", [
    ("BUY", "0.430001", "100", -1013, "Filter failure: PRICE_FILTER"),
    ("BUY", "0", "100", -1013, "Filter failure: PRICE_FILTER"),
    ("BUY", "0.43", "100.05", -1013, "Filter failure: LOT_SIZE"),
    ("BUY", "0.43", "0", -1013, "Filter failure: LOT_SIZE"),
    ("SELL", "0.43", "23.2", -1013, "Filter failure: NOTIONAL"),  # 9.976 < 10
])
def test_filter_failures_use_binance_codes(ex, side, price, qty, code, message):
    with pytest.raises(ExchangeRefused) as refused:
        ex.place(order(side, price, qty), trade_id=1)
    assert (refused.value.code, refused.value.message) == (code, message)
    assert ex.orders == {}


def test_unknown_symbol(ex):
    cmd = PlaceOrder(client_order_id="x", symbol="DOGEUSDT", trader_id=1, side="BUY", price=D("1"), quantity=D("1"))
    with pytest.raises(ExchangeRefused, match="-1121"):
        ex.place(cmd, trade_id=1)


def test_ids_count_from_one_and_duplicates_are_refused(ex):
    assert ex.place(order("BUY", "0.43"), 1).order_id == 1
    with pytest.raises(ExchangeRefused) as refused:
        ex.place(order("BUY", "0.42"), 2)
    assert refused.value.code == -2010 and "Duplicate" in refused.value.message
    assert ex.place(order("BUY", "0.42", trader_id=2), 2).order_id == 2


def test_never_fills_on_the_placing_event_inclusive_after(ex):
    ex.place(order("BUY", "0.43"), trade_id=5)
    assert ex.on_trade("XRPUSDT", 5, D("0.42")) == []        # same event
    assert ex.on_trade("XRPUSDT", 6, D("0.43001")) == []     # above the limit
    (fill,) = ex.on_trade("XRPUSDT", 7, D("0.43"))           # at the limit: fills
    assert (fill.price, fill.quantity, fill.trade_id) == (D("0.43"), D("100"), 7)
    order_ = ex.orders[1]
    assert (order_.status, order_.filled_trade_id) == ("FILLED", 7)


def test_sell_fills_at_or_above_its_limit_at_its_limit(ex):
    ex.place(order("SELL", "0.44"), trade_id=1)
    assert ex.on_trade("XRPUSDT", 2, D("0.43999")) == []
    (fill,) = ex.on_trade("XRPUSDT", 3, D("0.45"))
    assert fill.price == D("0.44")


def test_price_priority_then_placement_order(ex):
    ex.place(order("BUY", "0.43", trader_id=1), 1)
    ex.place(order("BUY", "0.44", trader_id=2), 1)
    ex.place(order("BUY", "0.44", trader_id=3), 1)
    ex.place(order("SELL", "0.41", trader_id=4), 1)
    ex.place(order("SELL", "0.40", trader_id=5), 1)
    fills = ex.on_trade("XRPUSDT", 2, D("0.42"))
    assert [f.order_id for f in fills] == [2, 3, 1, 5, 4]


def test_cancel_and_find(ex):
    ex.place(order("BUY", "0.43"), 1)
    assert ex.cancel("XRPUSDT-1-1-B").status == "CANCELED"
    assert ex.on_trade("XRPUSDT", 2, D("0.40")) == []
    with pytest.raises(ExchangeRefused, match="-2011"):
        ex.cancel("XRPUSDT-1-1-B")
    assert ex.find("XRPUSDT-1-1-B").status == "CANCELED"
    assert ex.find("nope") is None


def test_unaffordable_order_is_refused_and_changes_nothing():
    ex = PaperExchange(FILTERS, D("0.001"), quote_balance=D("50"))
    with pytest.raises(ExchangeRefused) as refused:
        ex.place(order("BUY", "0.5", "100"), 1)  # 50 + 0.05 fee > 50
    assert refused.value.code == -2010 and "insufficient balance" in refused.value.message
    with pytest.raises(ExchangeRefused, match="-2010"):
        ex.place(order("SELL", "0.5", "100"), 1)  # no base to sell
    assert ex.orders == {} and ex.balances["XRPUSDT"].quote == D("50")


def test_ledger_conserves_money():
    ex = PaperExchange(FILTERS, D("0.001"), quote_balance=D("1000"))
    ex.place(order("BUY", "0.43", "100"), 1)
    ex.on_trade("XRPUSDT", 2, D("0.42"))
    ex.place(order("SELL", "0.44", "100"), 2)
    ex.place(order("BUY", "0.41", "50", trader_id=2), 2)
    ex.on_trade("XRPUSDT", 3, D("0.45"))
    wallet = ex.balances["XRPUSDT"]
    spent = sum(f.price * f.quantity for f in ex.fills if f.side == "BUY")
    received = sum(f.price * f.quantity for f in ex.fills if f.side == "SELL")
    fees = sum(f.fee for f in ex.fills)
    assert wallet.quote + wallet.quote_reserved == D("1000") - spent + received - fees
    assert wallet.quote_reserved == D("0.41") * 50 * D("1.001")  # the open BUY
    assert (wallet.base, wallet.base_reserved) == (0, 0)
    assert fees == D("0.043") + D("0.044")
