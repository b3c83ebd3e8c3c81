"""The trader state machine: `step(state, event) -> (state, commands)`.

Sans-IO: no sockets, clocks or logging. The backtester and the trader
process both drive it. Transitions are declared in `TRANSITIONS`; an event
a phase does not expect raises `TransitionError` naming both, and leaves
the caller's state untouched (states are immutable).
"""

from collections.abc import Callable
from decimal import Decimal

from msgspec.structs import replace

from naive_mp.core.formulas import plan_cycle, plan_for_buy, untradable_reason
from naive_mp.core.money import floor_to
from naive_mp.core.messages import (
    Message,
    OrderCanceled,
    OrderChecked,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RequestRebuy,
    TradeSeen,
)
from naive_mp.core.state import TraderState

Step = tuple[TraderState, list[Message]]
NOTHING: list[Message] = []


class TransitionError(RuntimeError):
    """An event the trader's phase has no transition for: a bug, not market news."""


def _place(state: TraderState, side: str) -> PlaceOrder:
    plan = state.plan
    return PlaceOrder(
        client_order_id=state.client_order_id(side),
        symbol=state.symbol,
        trader_id=state.trader_id,
        side=side,
        price=plan.buy_price if side == "BUY" else plan.sell_price,
        quantity=plan.quantity,
    )


def _place_buy(state: TraderState, event: TradeSeen) -> Step:
    plan = plan_cycle(event.price, state.settings, state.filters)
    reason = untradable_reason(plan, state.filters)
    if reason is not None:
        return replace(state, phase="UNTRADABLE", plan=plan, reason=reason), NOTHING
    placed = replace(state, phase="BUY_PLACED", plan=plan)
    return placed, [_place(placed, "BUY")]


def _ignore(state: TraderState, event: Message) -> Step:
    return state, NOTHING


def _check_rebuy(state: TraderState, event: TradeSeen) -> Step:
    if state.rebuy_notified or not event.price < state.plan.rebuy_below:
        return state, NOTHING
    return replace(state, rebuy_notified=True), [RequestRebuy(trader_id=state.trader_id)]


def _own_fill(state: TraderState, event: OrderFilled, side: str) -> None:
    if event.side != side or event.client_order_id != state.client_order_id(side):
        raise TransitionError(
            f"trader {state.label} in {state.phase} got a fill of {event.side} "
            f"{event.client_order_id}, which is not its open order"
        )


def _place_sell(state: TraderState, event: OrderFilled) -> Step:
    _own_fill(state, event, "BUY")
    plan = state.plan
    if event.received is not None and event.received != plan.quantity:
        # The fee came out of what was bought (or the BUY was canceled part-filled): sell what we hold.
        plan = replace(plan, quantity=floor_to(event.received, state.filters.step_size))
    placed = replace(state, phase="SELL_PLACED", plan=plan)
    return placed, [_place(placed, "SELL")]


def _finish(state: TraderState, event: OrderFilled) -> Step:
    _own_fill(state, event, "SELL")
    return replace(state, phase="DONE"), NOTHING


def _own_order(state: TraderState, event: OrderCanceled, side: str) -> None:
    if event.side != side or event.client_order_id != state.client_order_id(side):
        raise TransitionError(f"trader {state.label} in {state.phase}: {event.client_order_id} "
                              "canceled, which is not its open order")


def _buy_canceled(state: TraderState, event: OrderCanceled) -> Step:
    """Nothing was bought: the cycle is void, and the next trade starts a new one (new client ids)."""
    _own_order(state, event, "BUY")
    return replace(state, phase="NEW", cycle=state.cycle + 1, plan=None, rebuy_notified=False), NOTHING


def _sell_canceled(state: TraderState, event: OrderCanceled) -> Step:
    """The bought quantity is still held: sell it again at the same price, under a new client id."""
    _own_order(state, event, "SELL")
    plan = state.plan if event.remaining is None else replace(state.plan, quantity=event.remaining)
    again = replace(state, sell_attempt=state.sell_attempt + 1, plan=plan)
    return again, [_place(again, "SELL")]


def _fail(state: TraderState, event: OrderRejected) -> Step:
    reason = f"exchange refused {event.side} {event.client_order_id}: {event.code} {event.reason}"
    return replace(state, phase="FAILED", reason=reason), NOTHING


# -- after a restart: what the exchange says of the trader's orders -------------


def _as_fill(state: TraderState, event: OrderChecked) -> OrderFilled:
    return OrderFilled(client_order_id=event.client_order_id, order_id=0, side=event.side,
                       price=event.price, quantity=event.quantity, trade_id=event.trade_id or 0,
                       received=event.received)


# Still working at the exchange: nothing to do but wait for its fill. PENDING_NEW: the
# gateway is still finding out whether the exchange took it (live, after a lost reply).
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})


def _check_new(state: TraderState, event: OrderChecked) -> Step:
    """A NEW trader may have placed its BUY just before it died: adopt that order."""
    if event.status is None:
        return state, NOTHING
    plan = plan_for_buy(event.price, state.settings, state.filters)
    adopted = replace(state, phase="BUY_PLACED", plan=replace(plan, quantity=event.quantity))
    return _check_placed(adopted, event)


def _check_placed(state: TraderState, event: OrderChecked) -> Step:
    """Follow the open order the state names: still open, filled, gone, or cancelled."""
    side = "BUY" if state.phase == "BUY_PLACED" else "SELL"
    if event.side != side or event.client_order_id != state.client_order_id(side):
        raise TransitionError(f"trader {state.label} in {state.phase} checked {event.client_order_id}, not its open order")
    if event.status in OPEN_STATUSES:
        return state, NOTHING
    if event.status == "FILLED":
        return (_place_sell if side == "BUY" else _finish)(state, _as_fill(state, event))
    if event.status is None:  # it never reached the exchange: place it now, same client id
        return state, [_place(state, side)]
    if event.status in ("CANCELED", "EXPIRED"):  # canceled while we were down: recover as if we had seen it
        part = event.executed is not None and 0 < event.executed < (event.quantity or 0)
        canceled = OrderCanceled(client_order_id=event.client_order_id, side=side,
                                 remaining=event.quantity - event.executed if part else None)
        return (_buy_canceled if side == "BUY" else _sell_canceled)(state, canceled)
    reason = f"its {side} {event.client_order_id} is {event.status} on the exchange"
    return replace(state, phase="FAILED", reason=reason), NOTHING


def open_order(state: TraderState) -> PlaceOrder | None:
    """The order the state says is (to be) open: what to place again after a refusal to retry."""
    side = {"BUY_PLACED": "BUY", "SELL_PLACED": "SELL"}.get(state.phase)
    return _place(state, side) if side else None


def orders_to_check(state: TraderState) -> list[tuple[str, str]]:
    """(side, client order id) a restarted trader must ask the exchange about first."""
    if state.phase in ("NEW", "BUY_PLACED"):
        return [("BUY", state.client_order_id("BUY"))]
    if state.phase == "SELL_PLACED":
        return [("SELL", state.client_order_id("SELL"))]
    return []


Handler = Callable[[TraderState, Message], Step]

# (phase, event type) -> (phases the handler may lead to, handler).
TRANSITIONS: dict[tuple[str, type], tuple[frozenset, Handler]] = {
    ("NEW", TradeSeen): (frozenset({"BUY_PLACED", "UNTRADABLE"}), _place_buy),
    ("BUY_PLACED", TradeSeen): (frozenset({"BUY_PLACED"}), _ignore),
    ("BUY_PLACED", OrderFilled): (frozenset({"SELL_PLACED"}), _place_sell),
    ("BUY_PLACED", OrderRejected): (frozenset({"FAILED"}), _fail),
    ("SELL_PLACED", TradeSeen): (frozenset({"SELL_PLACED"}), _check_rebuy),
    ("SELL_PLACED", OrderFilled): (frozenset({"DONE"}), _finish),
    ("SELL_PLACED", OrderRejected): (frozenset({"FAILED"}), _fail),
    ("BUY_PLACED", OrderCanceled): (frozenset({"NEW"}), _buy_canceled),
    ("SELL_PLACED", OrderCanceled): (frozenset({"SELL_PLACED"}), _sell_canceled),
    ("NEW", OrderChecked): (frozenset({"NEW", "BUY_PLACED", "SELL_PLACED", "FAILED"}), _check_new),
    ("BUY_PLACED", OrderChecked): (frozenset({"NEW", "BUY_PLACED", "SELL_PLACED", "FAILED"}), _check_placed),
    ("SELL_PLACED", OrderChecked): (frozenset({"SELL_PLACED", "DONE", "FAILED"}), _check_placed),
}


def step(state: TraderState, event: Message) -> Step:
    """Apply one event; returns the new state and the commands to carry out.

    A trade at or before the one of the last change was applied already: it
    changes nothing (effects are exactly once however often a trade arrives).
    """
    if isinstance(event, TradeSeen) and event.trade_id <= state.last_trade_id:
        return state, NOTHING
    try:
        targets, handler = TRANSITIONS[(state.phase, type(event))]
    except KeyError:
        raise TransitionError(
            f"trader {state.label}: no transition from {state.phase} on {type(event).__name__}"
        ) from None
    new_state, commands = handler(state, event)
    if new_state.phase not in targets:
        raise TransitionError(
            f"trader {state.label}: {state.phase} on {type(event).__name__} "
            f"led to {new_state.phase}, not one of {sorted(targets)}"
        )
    trade_id = getattr(event, "trade_id", None)
    if new_state is not state and trade_id and trade_id > new_state.last_trade_id:
        new_state = replace(new_state, last_trade_id=trade_id)
    return new_state, commands


def acts_on_any_trade(state: TraderState) -> bool:
    """True when the next trade, whatever its price, makes the trader act (a NEW trader)."""
    return state.phase == "NEW"


def rebuy_watch(state: TraderState) -> Decimal | None:
    """The price a trade must fall under to make the trader act, or None if none does.

    Lets a driver skip trades nobody reacts to without stepping every trader.
    """
    if state.phase == "SELL_PLACED" and not state.rebuy_notified:
        return state.plan.rebuy_below
    return None


def reacts_to(state: TraderState, price: Decimal) -> bool:
    """True when a trade at `price` makes the trader act (else stepping it changes nothing)."""
    watch = rebuy_watch(state)
    return acts_on_any_trade(state) or (watch is not None and price < watch)


def fresh_trader(symbol: str, trader_id: int, settings, filters) -> TraderState:
    """A trader that will place its BUY on the next trade it sees."""
    return TraderState(symbol=symbol, trader_id=trader_id, settings=settings, filters=filters)
