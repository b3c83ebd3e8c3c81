from decimal import Decimal as D

import pytest
from msgspec.structs import replace

from naive_mp.core import leader
from naive_mp.core.leader import LeaderState
from naive_mp.core.messages import (
    Notice,
    RebuyRequested,
    SettingsChanged,
    ShutdownRequested,
    StartTrader,
    SymbolStopped,
    TraderDied,
    TraderGivenUp,
    TraderReported,
    TradingStarted,
)
from naive_mp.core.settings import Filters, Settings

FILTERS = Filters(tick_size=D("0.001"), step_size=D("0.001"))


def started(chunks=3) -> LeaderState:
    state = LeaderState(symbol="XRPUSDT", settings=Settings(chunks=chunks), filters=FILTERS)
    state, _ = leader.step(state, TradingStarted())
    return state


def starts(commands):
    return [c.state.trader_id for c in commands if isinstance(c, StartTrader)]


def notices(commands):
    return " | ".join(c.text for c in commands if isinstance(c, Notice))


def report(state, trader_id, **changes):
    return leader.step(state, TraderReported(state=replace(state.traders[trader_id], **changes)))


def test_trading_started_starts_one_trader():
    state, commands = leader.step(LeaderState(symbol="XRPUSDT", settings=Settings(), filters=FILTERS),
                                  TradingStarted())
    assert starts(commands) == [1] and list(state.traders) == [1]
    assert "starting new trader XRPUSDT#1" in notices(commands)


def test_rebuys_never_exceed_chunks():
    state = started(chunks=3)
    ids = []
    for _ in range(5):
        state, commands = leader.step(state, RebuyRequested(trader_id=1))
        ids += starts(commands)
    assert ids == [2, 3] and len(state.traders) == 3
    assert "all traders already started" in notices(commands)


def test_done_trader_is_replaced_with_a_new_id():
    state, commands = report(started(), 1, phase="DONE")
    assert starts(commands) == [2] and list(state.traders) == [2]
    assert "XRPUSDT#1 finished" in notices(commands)


def test_ids_are_a_counter_never_reused():
    state = started(chunks=2)
    seen = []
    for _ in range(4):
        (tid,) = state.traders
        state, commands = report(state, tid, phase="DONE")
        seen += starts(commands)
    assert seen == [2, 3, 4, 5]


def test_state_reports_update_the_cache():
    state, commands = report(started(), 1, phase="BUY_PLACED")
    assert state.traders[1].phase == "BUY_PLACED" and commands == []


def test_crashed_trader_restarts_from_cached_state_same_id():
    state, _ = report(started(), 1, phase="SELL_PLACED", rebuy_notified=True)
    state, commands = leader.step(state, TraderDied(trader_id=1))
    (restart,) = [c for c in commands if isinstance(c, StartTrader)]
    assert restart.restart and restart.delay_s == 0
    assert restart.state.trader_id == 1 and restart.state.phase == "SELL_PLACED"
    assert restart.state.rebuy_notified


@pytest.mark.parametrize("deaths", [1, 5, 50])
def test_a_trader_dying_again_and_again_is_restarted_each_time_after_the_drivers_delay(deaths):
    state, _ = report(started(), 1, phase="SELL_PLACED")
    for delay in ([0.0, 0.4] + [0.0] * deaths)[:deaths]:  # the delays come from the driver's policy
        state, commands = leader.step(state, TraderDied(trader_id=1, delay_s=delay))
        (restart,) = [c for c in commands if isinstance(c, StartTrader)]
        assert (restart.state.trader_id, restart.delay_s, restart.restart) == (1, delay, True)
    assert list(state.traders) == [1] and "giving up" not in notices(commands)


def test_a_trader_given_up_on_leaves_the_cache_and_says_so():
    state, _ = report(started(), 1, phase="SELL_PLACED")
    state, commands = leader.step(state, TraderGivenUp(trader_id=1, why="it could not boot 5 times in a row"))
    assert state.traders == {} and starts(commands) == []
    assert ("giving up on trader XRPUSDT#1: it could not boot 5 times in a row; last state SELL_PLACED, "
            "its open orders stay on the exchange") in notices(commands)
    assert leader.step(state, TraderDied(trader_id=1)) == (state, [])  # a late death changes nothing


def test_the_last_trader_given_up_on_after_shutdown_stops_the_symbol():
    state, _ = leader.step(started(), ShutdownRequested())
    state, commands = leader.step(state, TraderGivenUp(trader_id=1, why="x"))
    assert SymbolStopped(symbol="XRPUSDT") in commands


def test_untradable_blocks_new_traders_until_settings_change():
    state, commands = report(started(), 1, phase="UNTRADABLE", reason="quantity 0 is under ...")
    assert state.traders == {} and "cannot trade XRPUSDT" in notices(commands)
    assert starts(commands) == []
    state, commands = leader.step(state, SettingsChanged(settings=Settings(budget=D("1000"))))
    assert starts(commands) == [2] and state.traders[2].settings.budget == D("1000")


def test_failed_trader_is_not_replaced():
    state, commands = report(started(), 1, phase="FAILED", reason="exchange refused BUY")
    assert state.traders == {} and starts(commands) == []
    assert "not replaced" in notices(commands)


def test_shutdown_ignores_rebuys_and_stops_after_last_trader():
    state = started(chunks=3)
    state, _ = leader.step(state, RebuyRequested(trader_id=1))  # trader 2
    state, commands = leader.step(state, ShutdownRequested())
    assert commands == []
    state, commands = leader.step(state, RebuyRequested(trader_id=1))
    assert starts(commands) == [] and "shutting down" in notices(commands)
    state, commands = report(state, 1, phase="DONE")
    assert starts(commands) == [] and not any(isinstance(c, SymbolStopped) for c in commands)
    state, commands = report(state, 2, phase="DONE")
    assert SymbolStopped(symbol="XRPUSDT") in commands


def test_unknown_trader_reports_are_noticed_not_cached():
    state = started()
    state, commands = leader.step(state, RebuyRequested(trader_id=42))
    assert "does not know" in notices(commands) and list(state.traders) == [1]


def test_unknown_event_type_is_an_error():
    with pytest.raises(TypeError, match="no handler for Notice"):
        leader.step(started(), Notice(level="info", text="x"))


def test_refused_event_leaves_old_state_untouched():
    state = started(chunks=2)
    before = replace(state)
    leader.step(state, RebuyRequested(trader_id=1))
    assert state == before and list(state.traders) == [1]
