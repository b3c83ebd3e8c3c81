"""Exact decimal arithmetic for prices and quantities.

Money is `Decimal` parsed from strings. Every computation here runs in one
wide context so that no intermediate product is rounded: the only rounding
in the strategy is the explicit `floor_to` onto the exchange's grid.
"""

from decimal import Context, Decimal, InvalidOperation

# 60 significant digits: a price, a fee factor and a profit factor multiplied
# together stay far below this, so products are exact.
EXACT = Context(prec=60)

ZERO = Decimal(0)
ONE = Decimal(1)


def floor_to(x: Decimal, k: Decimal) -> Decimal:
    """The largest multiple of `k` that is <= x (x >= 0, k > 0)."""
    # `//` yields the exact integer part, where x / k would round first.
    return EXACT.multiply(EXACT.divide_int(x, k), k)


def is_multiple(x: Decimal, k: Decimal) -> bool:
    """True when `x` lies on the grid of `k`."""
    return EXACT.remainder(x, k) == 0


def fmt(d: Decimal) -> str:
    """A plain decimal without exponent or trailing zeros: 0.4307, 100, 2.446."""
    text = format(d.normalize(EXACT), "f")
    return "0" if text in ("-0", "0") else text


def parse_decimal(text: str, what: str) -> Decimal:
    """A finite Decimal from a string, or ValueError naming `what`."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what}: {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{what}: {text!r} is not a finite number")
    return value
