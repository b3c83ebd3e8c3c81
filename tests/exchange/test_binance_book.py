"""The live book: every report, answer and snapshot of an order, in any order, any number of times."""

from decimal import Decimal as D

from naive_mp.core.messages import OrderCanceled, OrderFilled, PlaceOrder
from naive_mp.exchange import binance_book as book

BUY = PlaceOrder(client_order_id="XRPUSDT-3-1-B", symbol="XRPUSDT", trader_id=3, side="BUY",
                 price=D("0.4300"), quantity=D("10.0"))
SELL = PlaceOrder(client_order_id="XRPUSDT-3-1-S", symbol="XRPUSDT", trader_id=3, side="SELL",
                  price=D("0.4400"), quantity=D("9.9"))


def order(command=BUY):
    o = book.new_order(command, "XRP", local_id=1, placed_trade_id=5)
    book.apply_answer(o, {"orderId": 42, "status": "NEW", "executedQty": "0.00000000",
                          "cummulativeQuoteQty": "0.00000000"})
    return o


def report(x, status, z, t=-1, last="0", price="0.43000000", fee="0", asset=None, c="XRPUSDT-3-1-B", C=""):
    quote = str(D(z) * D("0.43"))
    return {"e": "executionReport", "c": c, "C": C, "x": x, "X": status, "i": 42, "l": last, "z": z,
            "L": price, "n": fee, "N": asset, "t": t, "Z": quote}


def test_partial_fills_are_followed_to_the_end_and_the_sell_is_for_what_was_received():
    o = order()
    book.apply_report(o, report("TRADE", "PARTIALLY_FILLED", "4", t=100, last="4", fee="0.004", asset="XRP"))
    assert book.news(o) is None and o.open
    book.apply_report(o, report("TRADE", "FILLED", "10", t=101, last="6", fee="0.006", asset="XRP"))
    news = book.news(o)
    assert news == OrderFilled(client_order_id="XRPUSDT-3-1-B", order_id=1, side="BUY", price=D("0.43"),
                               quantity=D("10"), trade_id=101, received=D("9.990"))
    assert book.news(o) is None, "told once"


def test_a_report_seen_twice_counts_once_and_a_late_one_does_not_move_the_status_back():
    o = order()
    fill = report("TRADE", "FILLED", "10", t=100, last="10", fee="0.01", asset="XRP")
    book.apply_report(o, fill)
    book.apply_report(o, fill)
    book.apply_report(o, report("NEW", "NEW", "0"))
    assert o.status == "FILLED" and len(o.fills) == 1 and o.base_fee == D("0.01")


def test_filled_known_only_by_its_cumulative_quantity_waits_for_its_trades():
    """A report lost in a stream gap: FILLED says 10, the fills known say 4. Telling now would oversell."""
    o = order()
    book.apply_report(o, report("TRADE", "PARTIALLY_FILLED", "4", t=100, last="4", fee="0.004", asset="XRP"))
    book.apply_answer(o, {"orderId": 42, "status": "FILLED", "executedQty": "10", "cummulativeQuoteQty": "4.3"})
    assert book.missing_fills(o) and book.news(o) is None
    book.apply_trades(o, [{"orderId": 42, "id": 100, "price": "0.43", "qty": "4", "commission": "0.004",
                           "commissionAsset": "XRP"},
                          {"orderId": 42, "id": 101, "price": "0.43", "qty": "6", "commission": "0.006",
                           "commissionAsset": "XRP"}])
    assert book.news(o).received == D("9.990")


def test_a_buy_canceled_by_hand_after_a_part_filled_is_a_fill_of_that_part():
    o = order()
    book.apply_report(o, report("TRADE", "PARTIALLY_FILLED", "4", t=100, last="4", fee="0.004", asset="XRP"))
    canceled = report("CANCELED", "CANCELED", "4", c="web_abc", C="XRPUSDT-3-1-B")
    assert book.report_client_id(canceled) == "XRPUSDT-3-1-B"
    book.apply_report(o, canceled)
    news = book.news(o)
    assert isinstance(news, OrderFilled) and news.quantity == D("4") and news.received == D("3.996")
    assert o.as_order().status == "FILLED" and o.as_order().quantity == D("4")


def test_a_sell_canceled_by_hand_is_sold_again_for_what_remains():
    o = order(SELL)
    book.apply_report(o, report("TRADE", "PARTIALLY_FILLED", "2.9", t=7, last="2.9", price="0.44",
                                fee="0.001", asset="USDT", c="XRPUSDT-3-1-S"))
    book.apply_report(o, report("CANCELED", "CANCELED", "2.9", c="web_x", C="XRPUSDT-3-1-S"))
    assert book.news(o) == OrderCanceled(client_order_id="XRPUSDT-3-1-S", side="SELL", remaining=D("7.0"))


def test_a_buy_canceled_untouched_is_a_cancel_and_a_fee_in_the_quote_asset_changes_nothing_held():
    o = order()
    book.apply_report(o, report("CANCELED", "CANCELED", "0", c="web_y", C="XRPUSDT-3-1-B"))
    assert book.news(o) == OrderCanceled(client_order_id="XRPUSDT-3-1-B", side="BUY")
    paid_in_bnb = order()
    book.apply_report(paid_in_bnb, report("TRADE", "FILLED", "10", t=9, last="10", fee="0.0001", asset="BNB"))
    assert book.news(paid_in_bnb).received is None  # all 10 held: the plan's quantity is sold


def test_a_refused_order_is_as_if_never_placed_and_tells_nothing():
    o = book.new_order(BUY, "XRP", local_id=2, placed_trade_id=5)
    assert o.status == book.SENDING and o.open
    book.refuse(o, "-2010 Account has insufficient balance for requested action.")
    assert not o.open and book.news(o) is None


def test_a_trader_asking_is_not_told_filled_before_every_fill_is_known():
    o = order()
    book.apply_answer(o, {"orderId": 42, "status": "FILLED", "executedQty": "10", "cummulativeQuoteQty": "4.3"})
    assert book.trader_view(o) == "PARTIALLY_FILLED", "the fee is not known: selling now would oversell"
    book.apply_trades(o, [{"orderId": 42, "id": 100, "price": "0.43", "qty": "10", "commission": "0.01",
                           "commissionAsset": "XRP"}])
    assert book.trader_view(o) == "FILLED" and o.received() == D("9.99")


def test_binance_showing_an_order_we_concluded_was_never_placed_brings_it_back():
    o = book.new_order(BUY, "XRP", local_id=2, placed_trade_id=5)
    book.refuse(o, "never reached Binance")
    book.apply_report(o, report("TRADE", "FILLED", "10", t=100, last="10", fee="0.01", asset="XRP"))
    assert o.status == "FILLED" and book.news(o).received == D("9.99")
