"""The strategy's formulas (strategy.md, "Formulas"), exact in Decimal."""

from decimal import Decimal

import msgspec

from naive_mp.core.money import EXACT, ONE, floor_to, fmt
from naive_mp.core.settings import Filters, Settings


class CyclePlan(msgspec.Struct, frozen=True):
    """Prices and quantity of one buy/sell cycle, fixed when the trader first acts."""

    buy_price: Decimal
    quantity: Decimal
    sell_price: Decimal
    rebuy_below: Decimal


def buy_price(price: Decimal, settings: Settings, filters: Filters) -> Decimal:
    """A little under the market: floor_to(p - p * buy_down_interval, tick)."""
    below = EXACT.subtract(price, EXACT.multiply(price, settings.buy_down_interval))
    return floor_to(below, filters.tick_size)


def quantity(bp: Decimal, settings: Settings, filters: Filters) -> Decimal:
    """floor_to((budget / chunks) / bp, step), as one exact integer division."""
    per_step = EXACT.multiply(EXACT.multiply(bp, settings.chunks), filters.step_size)
    return EXACT.multiply(EXACT.divide_int(settings.budget, per_step), filters.step_size)


def sell_price(bp: Decimal, settings: Settings, filters: Filters) -> Decimal:
    """floor_to(bp * f * (1 + profit_target) * f, tick) with f = 1 + fee."""
    f = EXACT.add(ONE, settings.fee)
    target = EXACT.add(ONE, settings.profit_target)
    return floor_to(EXACT.multiply(EXACT.multiply(EXACT.multiply(bp, f), target), f), filters.tick_size)


def rebuy_below(bp: Decimal, settings: Settings) -> Decimal:
    """A trade strictly under this price asks the leader for one more trader."""
    return EXACT.multiply(bp, EXACT.subtract(ONE, settings.rebuy_interval))


def plan_cycle(price: Decimal, settings: Settings, filters: Filters) -> CyclePlan:
    """Everything a fresh trader decides from the price of its first event."""
    return plan_for_buy(buy_price(price, settings, filters), settings, filters)


def plan_for_buy(bp: Decimal, settings: Settings, filters: Filters) -> CyclePlan:
    """The cycle that follows from a buy price (also: from a BUY found on the exchange)."""
    return CyclePlan(
        buy_price=bp,
        quantity=quantity(bp, settings, filters) if bp > 0 else Decimal(0),
        sell_price=sell_price(bp, settings, filters),
        rebuy_below=rebuy_below(bp, settings),
    )


def untradable_reason(plan: CyclePlan, filters: Filters) -> str | None:
    """Why the exchange would refuse this plan's BUY, or None when it would not."""
    if plan.buy_price <= 0:
        return f"buy price {fmt(plan.buy_price)} is not above zero"
    if plan.quantity <= 0:
        return f"quantity {fmt(plan.quantity)}: the budget per trader buys less than one step {fmt(filters.step_size)}"
    if plan.quantity < filters.min_qty:
        return f"quantity {fmt(plan.quantity)} is under the minimum quantity {fmt(filters.min_qty)}"
    for side, price in (("BUY", plan.buy_price), ("SELL", plan.sell_price)):
        notional = EXACT.multiply(plan.quantity, price)
        if notional < filters.min_notional:
            return f"{side} order value {fmt(notional)} is under the minimum notional {fmt(filters.min_notional)}"
    return None
