from decimal import Decimal as D

import pytest
from msgspec.structs import replace

from naive_mp.core.formulas import plan_cycle
from naive_mp.core.messages import (OrderCanceled, OrderChecked, OrderFilled, OrderRejected, PlaceOrder, RequestRebuy,
                                    TradeSeen)
from naive_mp.core.settings import Filters, Settings
from naive_mp.core.state import TraderState
from naive_mp.core.trader import TRANSITIONS, TransitionError, fresh_trader, step

FILTERS = Filters(tick_size=D("0.001"), step_size=D("0.001"))
PLAN = plan_cycle(D("8.176"), Settings(), FILTERS)  # buy 8.175 x 2.446, sell 8.181, rebuy < 8.166825


def trader(phase="NEW", **changes) -> TraderState:
    state = fresh_trader("XRPUSDT", 7, Settings(), FILTERS)
    if phase != "NEW":
        state = replace(state, phase=phase, plan=PLAN)
    return replace(state, **changes)


def trade(price) -> TradeSeen:
    return TradeSeen(symbol="XRPUSDT", trade_id=99, price=D(price))


def fill(side, client_order_id=None) -> OrderFilled:
    price = PLAN.buy_price if side == "BUY" else PLAN.sell_price
    return OrderFilled(client_order_id=client_order_id or f"XRPUSDT-7-1-{side[0]}", order_id=1,
                       side=side, price=price, quantity=PLAN.quantity, trade_id=100)


def place(side, suffix="") -> PlaceOrder:
    price = PLAN.buy_price if side == "BUY" else PLAN.sell_price
    return PlaceOrder(client_order_id=f"XRPUSDT-7-1-{side[0]}{suffix}", symbol="XRPUSDT", trader_id=7,
                      side=side, price=price, quantity=PLAN.quantity)


def checked(side, status) -> OrderChecked:
    price = PLAN.buy_price if side == "BUY" else PLAN.sell_price
    return OrderChecked(client_order_id=f"XRPUSDT-7-1-{side[0]}", side=side, status=status,
                        price=price if status else None, quantity=PLAN.quantity if status else None)


CANCELED_BUY = OrderCanceled(client_order_id="XRPUSDT-7-1-B", side="BUY")
CANCELED_SELL = OrderCanceled(client_order_id="XRPUSDT-7-1-S", side="SELL")
REJECTED = OrderRejected(client_order_id="XRPUSDT-7-1-B", side="BUY", code=-2010, reason="no money")

# every legal transition: (state, event, expected phase, expected commands)
LEGAL = [
    ("first trade places the BUY", trader(), trade("8.176"), "BUY_PLACED", [place("BUY")]),
    ("waiting BUY ignores trades", trader("BUY_PLACED"), trade("9"), "BUY_PLACED", []),
    ("filled BUY places the SELL", trader("BUY_PLACED"), fill("BUY"), "SELL_PLACED", [place("SELL")]),
    ("rejected BUY fails", trader("BUY_PLACED"), REJECTED, "FAILED", []),
    ("price above threshold: nothing", trader("SELL_PLACED"), trade("8.166825"), "SELL_PLACED", []),
    ("price under threshold: rebuy", trader("SELL_PLACED"), trade("8.166824"), "SELL_PLACED",
     [RequestRebuy(trader_id=7)]),
    ("rebuy asked only once", trader("SELL_PLACED", rebuy_notified=True), trade("8"), "SELL_PLACED", []),
    ("filled SELL finishes", trader("SELL_PLACED"), fill("SELL"), "DONE", []),
    ("rejected SELL fails", trader("SELL_PLACED"), REJECTED, "FAILED", []),
    # after a restart, the trader asks the exchange about the order its state names
    ("restarted NEW, no BUY anywhere", trader(), checked("BUY", None), "NEW", []),
    ("restarted NEW, its BUY rests: adopt it", trader(), checked("BUY", "NEW"), "BUY_PLACED", []),
    ("restarted NEW, its BUY filled", trader(), checked("BUY", "FILLED"), "SELL_PLACED", [place("SELL")]),
    ("restarted BUY_PLACED, BUY rests", trader("BUY_PLACED"), checked("BUY", "NEW"), "BUY_PLACED", []),
    ("restarted BUY_PLACED, BUY never arrived", trader("BUY_PLACED"), checked("BUY", None), "BUY_PLACED",
     [place("BUY")]),
    ("restarted BUY_PLACED, BUY filled", trader("BUY_PLACED"), checked("BUY", "FILLED"), "SELL_PLACED",
     [place("SELL")]),
    ("restarted SELL_PLACED, SELL filled", trader("SELL_PLACED"), checked("SELL", "FILLED"), "DONE", []),
    ("restarted SELL_PLACED, SELL never arrived", trader("SELL_PLACED"), checked("SELL", None), "SELL_PLACED",
     [place("SELL")]),
    # an order canceled by someone else (seen live, or found after a restart): strategy.md's recovery
    ("restarted SELL_PLACED, SELL canceled: sell again", trader("SELL_PLACED"), checked("SELL", "CANCELED"),
     "SELL_PLACED", [place("SELL", "2")]),
    ("restarted BUY_PLACED, BUY canceled: next cycle", trader("BUY_PLACED"), checked("BUY", "CANCELED"), "NEW", []),
    ("restarted SELL_PLACED, SELL expired: as canceled", trader("SELL_PLACED"), checked("SELL", "EXPIRED"),
     "SELL_PLACED", [place("SELL", "2")]),
    ("restarted SELL_PLACED, SELL rejected after all", trader("SELL_PLACED"), checked("SELL", "REJECTED"), "FAILED", []),
    ("canceled BUY: a new cycle on the next trade", trader("BUY_PLACED"), CANCELED_BUY, "NEW", []),
    ("canceled SELL: the same SELL, a new client id", trader("SELL_PLACED"), CANCELED_SELL, "SELL_PLACED",
     [place("SELL", "2")]),
]


@pytest.mark.parametrize("state, event, phase, commands", [row[1:] for row in LEGAL],
                         ids=[row[0] for row in LEGAL])
def test_legal_transitions(state, event, phase, commands):
    new_state, got = step(state, event)
    assert new_state.phase == phase
    assert got == commands
    assert new_state.trader_id == state.trader_id


def test_table_covers_exactly_the_legal_rows():
    covered = {(row[1].phase, type(row[2])) for row in LEGAL}
    assert covered == set(TRANSITIONS)


def test_adopted_buy_keeps_the_exchange_price_and_quantity():
    state, _ = step(trader(), checked("BUY", "NEW"))
    assert state.plan == PLAN


def test_restart_checks_the_order_the_state_names():
    from naive_mp.core.trader import orders_to_check
    assert orders_to_check(trader()) == [("BUY", "XRPUSDT-7-1-B")]
    assert orders_to_check(trader("SELL_PLACED")) == [("SELL", "XRPUSDT-7-1-S")]
    assert orders_to_check(trader("DONE")) == []


def test_a_canceled_buy_starts_the_next_cycle_from_the_next_trade():
    state, _ = step(trader("BUY_PLACED", rebuy_notified=True), CANCELED_BUY)
    assert (state.cycle, state.plan, state.rebuy_notified) == (2, None, False)
    state, commands = step(state, trade("8.176"))
    assert [c.client_order_id for c in commands] == ["XRPUSDT-7-2-B"]


def test_a_sell_canceled_twice_gets_a_third_client_id_and_its_fill_finishes():
    state, _ = step(trader("SELL_PLACED"), CANCELED_SELL)
    state, commands = step(state, OrderCanceled(client_order_id="XRPUSDT-7-1-S2", side="SELL"))
    assert commands == [place("SELL", "3")]
    done, _ = step(state, fill("SELL", "XRPUSDT-7-1-S3"))
    assert done.phase == "DONE"
    with pytest.raises(TransitionError):
        step(state, CANCELED_SELL)  # an old id is not its open order


def test_rebuy_sets_flag_and_keeps_plan():
    state, _ = step(trader("SELL_PLACED"), trade("8.0"))
    assert state.rebuy_notified and state.plan == PLAN


@pytest.mark.parametrize("phase, event", [
    ("NEW", fill("BUY")),
    ("DONE", trade("8")),
    ("FAILED", trade("8")),
    ("UNTRADABLE", fill("SELL")),
    ("SELL_PLACED", fill("BUY")),  # a BUY fill while the SELL rests: wrong side
])
def test_illegal_transition_names_phase_and_event(phase, event):
    state = trader(phase)
    with pytest.raises(TransitionError) as error:
        step(state, event)
    assert phase in str(error.value) and "XRPUSDT#7" in str(error.value)


def test_fill_of_someone_elses_order_is_refused():
    with pytest.raises(TransitionError, match="not its open order"):
        step(trader("BUY_PLACED"), fill("BUY", client_order_id="XRPUSDT-8-1-B"))


def test_untradable_when_under_min_notional():
    filters = Filters(tick_size=D("0.001"), step_size=D("0.001"), min_notional=D("50"))
    state, commands = step(fresh_trader("XRPUSDT", 1, Settings(), filters), trade("8.176"))
    assert state.phase == "UNTRADABLE" and commands == []
    assert "minimum notional 50" in state.reason


def test_client_order_ids_are_binance_legal():
    import re
    state = fresh_trader("ABCDEFGHIJKLMNOPQRST", 123456789, Settings(), FILTERS)
    for side in ("BUY", "SELL"):
        assert re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", state.client_order_id(side))


# -- live: fees taken from what was bought, partial fills, orders still being placed ------


def test_the_sell_is_for_what_was_received_floored_to_the_step():
    """On Binance spot a BUY's fee comes out of the base asset: sell what the account got."""
    received = PLAN.quantity - PLAN.quantity * D("0.001")  # 2.446 - 0.002446 = 2.443554
    state, commands = step(trader("BUY_PLACED"), replace(fill("BUY"), received=received))
    assert state.phase == "SELL_PLACED" and state.plan.quantity == D("2.443")
    assert commands == [replace(place("SELL"), quantity=D("2.443"))]


def test_a_restarted_trader_sells_what_its_filled_buy_received():
    event = replace(checked("BUY", "FILLED"), received=D("2.4435"))
    state, commands = step(trader("BUY_PLACED"), event)
    assert state.phase == "SELL_PLACED" and commands == [replace(place("SELL"), quantity=D("2.443"))]


def test_a_sell_canceled_part_filled_sells_the_rest_again():
    event = replace(CANCELED_SELL, remaining=D("1.046"))
    state, commands = step(trader("SELL_PLACED"), event)
    assert state.plan.quantity == D("1.046")
    assert commands == [replace(place("SELL", "2"), quantity=D("1.046"))]


@pytest.mark.parametrize("status", ["NEW", "PARTIALLY_FILLED", "PENDING_NEW"])
def test_an_order_still_working_at_the_exchange_is_waited_for(status):
    for phase, side in (("BUY_PLACED", "BUY"), ("SELL_PLACED", "SELL")):
        state, commands = step(trader(phase), checked(side, status))
        assert (state.phase, commands) == (phase, [])


def test_a_restarted_trader_whose_sell_was_canceled_part_filled_sells_only_the_rest():
    event = replace(checked("SELL", "CANCELED"), executed=D("1.400"))
    state, commands = step(trader("SELL_PLACED"), event)
    assert commands == [replace(place("SELL", "2"), quantity=PLAN.quantity - D("1.400"))]
