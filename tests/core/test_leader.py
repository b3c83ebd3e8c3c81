from decimal import Decimal as D

import pytest
from msgspec.structs import replace

from naive_mp.core import leader
from naive_mp.core.leader import MAX_DEATHS_AT_START, LeaderState
from naive_mp.core.messages import (
    Notice,
    RebuyRequested,
    SettingsChanged,
    ShutdownRequested,
    StartTrader,
    SymbolStopped,
    TraderDied,
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
    state, commands = leader.step(state, TraderDied(trader_id=1, uptime_s=60))
    (restart,) = [c for c in commands if isinstance(c, StartTrader)]
    assert restart.restart and restart.delay_s == 0
    assert restart.state.trader_id == 1 and restart.state.phase == "SELL_PLACED"
    assert restart.state.rebuy_notified


def test_trader_dying_at_start_backs_off_then_is_given_up():
    state = started()
    delays = []
    for _ in range(MAX_DEATHS_AT_START):
        state, commands = leader.step(state, TraderDied(trader_id=1, uptime_s=0.01))
        delays += [c.delay_s for c in commands if isinstance(c, StartTrader)]
    assert delays == [0.0, 0.1, 0.2, 0.4]  # growing, never a tight loop
    assert 1 not in state.traders and "giving up on trader XRPUSDT#1" in notices(commands)


def test_long_uptime_resets_the_back_off():
    state = started()
    for uptime in (0.01, 0.01, 30, 0.01):
        state, commands = leader.step(state, TraderDied(trader_id=1, uptime_s=uptime))
    assert [c.delay_s for c in commands if isinstance(c, StartTrader)] == [0.0]


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
