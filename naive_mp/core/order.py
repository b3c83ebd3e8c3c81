"""strategy.md's deterministic event order for one symbol, written once.

The backtest engine and the lockstep conductor both hand each trade event to
a symbol's traders in the same order, and order ids follow from that order,
so it must live in one place. Pure: no I/O, no logging, no clocks.

For one trade event, once the exchange has filled what it crosses (step 1):

- `hand_offs`: steps 2 and 3, who gets what, in which order;
- `for_leader`: step 4, what the leader hears, in which order;
- `quiet_band`: the prices at which nobody would act, so a driver may skip
  such trades without stepping anybody (`band_in_units` for integer tapes).
"""

from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from naive_mp.core import trader as trader_core
from naive_mp.core.messages import Message, OrderFilled, RebuyRequested, TradeSeen, TraderReported
from naive_mp.core.money import EXACT, ZERO
from naive_mp.core.state import TraderState

HandOff = tuple[int, TradeSeen | OrderFilled]
# (lo, hi): a trade at a price p with lo < p < hi makes nobody act; None is no bound.
Band = tuple[Decimal | None, Decimal | None]
# lo >= hi: no price is quiet (a NEW trader acts on whatever trade comes next).
EMPTY_BAND: Band = (ZERO, ZERO)


def hand_offs(traders: Mapping[int, TraderState], fills: Iterable[OrderFilled],
              trade: TradeSeen) -> list[HandOff]:
    """Steps 2 and 3: the ordered (trader id, event) pairs to hand for one trade.

    First each filled trader its fill, ascending id; then each other trader
    that reacts to `trade`, ascending id. A fill whose trader is not in
    `traders` is left out (the leader gave up on it). A trader that does not
    react to the trade is left out too: stepping it would change nothing.
    """
    by_trader = {TraderState.trader_id_of(f.client_order_id): f for f in fills}
    filled: list[HandOff] = [(tid, by_trader[tid]) for tid in sorted(by_trader) if tid in traders]
    price = trade.price
    # a filled trader learns of its fill only: it does at most one thing per event
    reacting: list[HandOff] = [(tid, trade) for tid, state in sorted(traders.items())
                               if tid not in by_trader and trader_core.reacts_to(state, price)]
    return filled + reacting


def _reporter(event: Message) -> int:
    if isinstance(event, TraderReported):
        return event.state.trader_id
    if isinstance(event, RebuyRequested):
        return event.trader_id
    raise TypeError(f"step 4 orders trader reports, not {type(event).__name__}")


def for_leader(events: Iterable[Message]) -> list[Message]:
    """Step 4: what steps 2 and 3 reported, in ascending trader id, for the leader.

    `events` are TraderReported and RebuyRequested. The sort is stable, so one
    trader's events keep their order (its new state before its rebuy).
    """
    return sorted(events, key=_reporter)


def quiet_band(traders: Mapping[int, TraderState]) -> Band:
    """The open band of prices at which no trader of the symbol acts.

    From the trader states alone, so any holder of the states (the backtest,
    a lockstep leader's cache) can compute it: a BUY_PLACED trader's BUY
    fills at p <= buy_price; a SELL_PLACED trader's SELL fills at
    p >= sell_price, and before its rebuy it acts at p < rebuy_below; a NEW
    trader acts on any trade, which empties the band.
    """
    lo: Decimal | None = None
    hi: Decimal | None = None
    for state in traders.values():
        if trader_core.acts_on_any_trade(state):
            return EMPTY_BAND
        if state.phase == "BUY_PLACED":
            lo = _higher(lo, state.plan.buy_price)
        elif state.phase == "SELL_PLACED":
            hi = _lower(hi, state.plan.sell_price)
        watch = trader_core.rebuy_watch(state)
        if watch is not None:
            # it acts at p < watch only; the open band cannot say p == watch is quiet too
            lo = _higher(lo, watch)
    return lo, hi


def _higher(bound: Decimal | None, price: Decimal) -> Decimal:
    return price if bound is None else max(bound, price)


def _lower(bound: Decimal | None, price: Decimal) -> Decimal:
    return price if bound is None else min(bound, price)


def band_in_units(band: Band, decimals: int) -> tuple[int, int | float]:
    """`band` in tape units (price * 10**decimals), for a plain integer comparison.

    Tape prices are integers, so rounding lo down and hi up keeps the band
    exact: p > lo iff p > floor(lo), and p < hi iff p < ceil(hi). No lower
    bound is -1 (tape prices are never negative); no upper bound is infinity.
    """
    lo, hi = band
    scale = Decimal(1).scaleb(decimals)
    lo_units = -1 if lo is None else int(EXACT.multiply(lo, scale).to_integral_value(rounding=ROUND_FLOOR))
    hi_units = float("inf") if hi is None else int(EXACT.multiply(hi, scale).to_integral_value(rounding=ROUND_CEILING))
    return lo_units, hi_units
