"""strategy.md's event order (naive_mp.core.order): hand-offs, the leader's order, the quiet band."""

from decimal import Decimal as D

import pytest
from msgspec.structs import replace

from naive_mp.core.formulas import CyclePlan
from naive_mp.core.messages import OrderFilled, RebuyRequested, TradeSeen, TraderReported
from naive_mp.core.order import EMPTY_BAND, band_in_units, for_leader, hand_offs, quiet_band
from naive_mp.core.settings import Filters, Settings
from naive_mp.core.trader import fresh_trader

FILTERS = Filters(tick_size=D("0.01"), step_size=D("0.001"))


def trader(tid, phase="NEW", buy="10", sell="12", rebuy="9", notified=False):
    state = fresh_trader("XRPUSDT", tid, Settings(), FILTERS)
    if phase == "NEW":
        return state
    plan = CyclePlan(buy_price=D(buy), quantity=D("1"), sell_price=D(sell), rebuy_below=D(rebuy))
    return replace(state, phase=phase, plan=plan, rebuy_notified=notified)


def fill(tid, side="BUY"):
    return OrderFilled(client_order_id=f"XRPUSDT-{tid}-1-{side[0]}", order_id=100 + tid, side=side,
                       price=D("10"), quantity=D("1"), trade_id=7)


def trade(price):
    return TradeSeen(symbol="XRPUSDT", trade_id=7, price=D(price))


# (name, traders, ids whose order filled (in the exchange's order), price, expected [(id, "fill" | "trade")])
HAND_OFFS = [
    ("fills first ascending, then reacting traders ascending",
     [trader(5), trader(2, "BUY_PLACED"), trader(9, "SELL_PLACED", sell="10"), trader(3),
      trader(7, "SELL_PLACED", rebuy="10.5")],
     [9, 2], "10",
     [(2, "fill"), (9, "fill"), (3, "trade"), (5, "trade"), (7, "trade")]),
    ("a filled trader never also gets the trade",
     [trader(4, "SELL_PLACED", rebuy="10.5"), trader(6, "SELL_PLACED", rebuy="10.5")],
     [6], "10",
     [(6, "fill"), (4, "trade")]),
    ("traders that do not react are skipped",
     [trader(1, "BUY_PLACED"), trader(2, "SELL_PLACED", rebuy="9"),
      trader(3, "SELL_PLACED", rebuy="11", notified=True), trader(4, "SELL_PLACED", rebuy="11")],
     [], "10",
     [(4, "trade")]),
    ("a trade exactly at the rebuy threshold is not under it",
     [trader(1, "SELL_PLACED", rebuy="10")],
     [], "10",
     []),
    ("a fill of a trader the leader no longer has is left out",
     [trader(1, "BUY_PLACED")],
     [8], "10",
     []),
    ("no traders, nothing to hand", [], [], "10", []),
]


@pytest.mark.parametrize("traders, filled, price, expected", [row[1:] for row in HAND_OFFS],
                         ids=[row[0] for row in HAND_OFFS])
def test_hand_offs(traders, filled, price, expected):
    fills = {tid: fill(tid) for tid in filled}
    seen = trade(price)
    got = hand_offs({t.trader_id: t for t in traders}, [fills[tid] for tid in filled], seen)
    assert got == [(tid, fills[tid] if what == "fill" else seen) for tid, what in expected]


def test_hand_offs_take_the_trader_id_from_the_client_order_id():
    # order_id 3 would name trader 3 if it were used; the client id names trader 12
    odd = OrderFilled(client_order_id="BTC-EUR-12-2-S", order_id=3, side="SELL",
                      price=D("1"), quantity=D("1"), trade_id=7)
    traders = {3: trader(3, "SELL_PLACED", rebuy="1"), 12: trader(12, "SELL_PLACED")}
    assert hand_offs(traders, [odd], trade("20")) == [(12, odd)]


def test_for_leader_sorts_by_trader_id_and_keeps_one_traders_order():
    def reported(tid):
        return TraderReported(state=trader(tid, "SELL_PLACED", notified=True))

    events = [reported(9), reported(2), reported(3), RebuyRequested(trader_id=3), reported(1),
              RebuyRequested(trader_id=2)]
    assert for_leader(events) == [reported(1), reported(2), RebuyRequested(trader_id=2),
                                  reported(3), RebuyRequested(trader_id=3), reported(9)]


def test_for_leader_refuses_what_no_trader_reported():
    with pytest.raises(TypeError, match="TradeSeen"):
        for_leader([trade("1")])


# (name, traders, expected (lo, hi)); None is no bound
BANDS = [
    ("no trader: every price is quiet", [], (None, None)),
    ("BUY_PLACED: its BUY fills at or under the buy price", [trader(1, "BUY_PLACED", buy="10")], (D("10"), None)),
    ("SELL_PLACED: SELL fills at or over the sell price, rebuy under rebuy_below",
     [trader(1, "SELL_PLACED", sell="12", rebuy="9")], (D("9"), D("12"))),
    ("SELL_PLACED after its rebuy: only the SELL bounds",
     [trader(1, "SELL_PLACED", sell="12", rebuy="9", notified=True)], (None, D("12"))),
    ("a NEW trader acts on any trade", [trader(1)], EMPTY_BAND),
    ("a NEW trader empties the band of the others",
     [trader(1, "BUY_PLACED"), trader(2), trader(3, "SELL_PLACED")], EMPTY_BAND),
    ("several traders: the intersection",
     [trader(1, "BUY_PLACED", buy="10"), trader(2, "BUY_PLACED", buy="10.5"),
      trader(3, "SELL_PLACED", sell="12", rebuy="9"),
      trader(4, "SELL_PLACED", sell="11.5", rebuy="11", notified=True)],
     (D("10.5"), D("11.5"))),
    ("a rebuy threshold over every buy price is the lower bound",
     [trader(1, "BUY_PLACED", buy="10"), trader(2, "SELL_PLACED", sell="13", rebuy="10.8")],
     (D("10.8"), D("13"))),
    ("a finished trader bounds nothing", [trader(1, "DONE")], (None, None)),
]


@pytest.mark.parametrize("traders, expected", [row[1:] for row in BANDS], ids=[row[0] for row in BANDS])
def test_quiet_band(traders, expected):
    assert quiet_band({t.trader_id: t for t in traders}) == expected


def acts(traders, price) -> bool:
    """Somebody acts on a trade at `price`: an open order fills, or a trader reacts."""
    by_id = {t.trader_id: t for t in traders}
    fills = [t for t in traders if (t.phase == "BUY_PLACED" and price <= t.plan.buy_price)
             or (t.phase == "SELL_PLACED" and price >= t.plan.sell_price)]
    return bool(fills or hand_offs(by_id, [], trade(price)))


@pytest.mark.parametrize("traders", [row[1] for row in BANDS], ids=[row[0] for row in BANDS])
def test_nobody_acts_inside_the_band_and_somebody_just_outside(traders):
    lo, hi = quiet_band({t.trader_id: t for t in traders})
    for cents in range(800, 1400, 5):
        p = D(cents) / 100
        if (lo is None or lo < p) and (hi is None or p < hi):
            assert not acts(traders, p), p
    if (lo, hi) != EMPTY_BAND:  # the band is as wide as it may be, bar a rebuy threshold itself
        assert lo is None or acts(traders, lo - D("0.001")), lo
        assert hi is None or acts(traders, hi), hi


# (name, band, tape decimals, expected band in tape units)
UNITS = [
    ("no bounds", (None, None), 5, (-1, float("inf"))),
    ("on the tape's grid", (D("0.43071"), D("0.43075")), 5, (43071, 43075)),
    ("between grid points: lo rounds down, hi up", (D("0.430715"), D("0.430755")), 5, (43071, 43076)),
    ("empty band stays empty", EMPTY_BAND, 5, (0, 0)),
    ("coarser tape", (D("8.166825"), None), 2, (816, float("inf"))),
]


@pytest.mark.parametrize("band, decimals, expected", [row[1:] for row in UNITS], ids=[row[0] for row in UNITS])
def test_band_in_units(band, decimals, expected):
    assert band_in_units(band, decimals) == expected


@pytest.mark.parametrize("band, decimals", [row[1:3] for row in UNITS], ids=[row[0] for row in UNITS])
def test_band_in_units_skips_exactly_the_quiet_tape_prices(band, decimals):
    lo, hi = band
    lo_units, hi_units = band_in_units(band, decimals)
    centre = 43073 if decimals == 5 else 816
    for units in range(centre - 20, centre + 20):
        p = D(units).scaleb(-decimals)
        quiet = (lo is None or lo < p) and (hi is None or p < hi)
        assert (lo_units < units < hi_units) == quiet, units
