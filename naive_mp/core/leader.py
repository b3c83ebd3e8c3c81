"""The leader policy of one symbol: `step(state, event) -> (state, commands)`.

It keeps every live trader's last reported state (the cache a crashed
trader restarts from), starts one trader, honours rebuys up to `chunks`,
replaces finished traders, restarts dead ones from their cached state and
forgets those given up on. When and whether a dead trader restarts is the
driver's restart policy (naive_mp.runtime.children): its verdict arrives as
an event, TraderDied (with the delay) or TraderGivenUp. Sans-IO: time arrives
inside events, never from a clock.
"""

from collections.abc import Callable

import msgspec
from msgspec.structs import replace

from naive_mp.core.messages import (
    Message,
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
    TradingStopped,
)
from naive_mp.core.settings import Filters, Settings
from naive_mp.core.state import TraderState


class LeaderState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the leader of one symbol knows. Immutable."""

    symbol: str
    settings: Settings
    filters: Filters
    traders: dict[int, TraderState] = {}
    next_trader_id: int = 1
    shutting_down: bool = False
    # `trade stop`: the traders' processes are stopped, their states kept to resume.
    stopped: bool = False
    # Set when a trader found the settings cannot trade: no trader starts until they change.
    untradable: str | None = None


Step = tuple[LeaderState, list[Message]]


def _start_fresh(state: LeaderState, why: str) -> Step:
    trader = TraderState(
        symbol=state.symbol,
        trader_id=state.next_trader_id,
        settings=state.settings,
        filters=state.filters,
    )
    new_state = replace(
        state,
        traders={**state.traders, trader.trader_id: trader},
        next_trader_id=state.next_trader_id + 1,
    )
    note = Notice(level="info", text=f"starting new trader {trader.label} ({why})")
    return new_state, [note, StartTrader(state=trader)]


def _without(state: LeaderState, trader_id: int, **changes) -> LeaderState:
    traders = {tid: t for tid, t in state.traders.items() if tid != trader_id}
    return replace(state, traders=traders, **changes)


def _stopped_if_empty(state: LeaderState) -> list[Message]:
    if state.shutting_down and not state.traders:
        return [Notice(level="info", text=f"{state.symbol} shut down"), SymbolStopped(symbol=state.symbol)]
    return []


def _trading_started(state: LeaderState, event: TradingStarted) -> Step:
    state = replace(state, shutting_down=event.shutdown, stopped=False)
    if state.traders:  # resuming: every cached trader goes on from its state
        return state, [StartTrader(state=t, restart=True) for t in state.traders.values()]
    if state.shutting_down:
        return state, _stopped_if_empty(state)
    if state.untradable:
        return state, [Notice(level="warning", text=f"{state.symbol}: {state.untradable}")]
    return _start_fresh(state, "trading started")


def _trading_stopped(state: LeaderState, event: TradingStopped) -> Step:
    note = Notice(level="info", text=f"{state.symbol}: trading stopped; {len(state.traders)} traders kept to resume")
    return replace(state, stopped=True), [note]


def _rebuy_requested(state: LeaderState, event: RebuyRequested) -> Step:
    label = f"{state.symbol}#{event.trader_id}"
    if event.trader_id not in state.traders:
        return state, [Notice(level="warning", text=f"rebuy from {label}, which this leader does not know")]
    if state.shutting_down or state.stopped:
        why = "shutting down" if state.shutting_down else "trading stopped"
        return state, [Notice(level="info", text=f"rebuy from {label} ignored: {why}")]
    if state.untradable:
        return state, []
    if len(state.traders) >= state.settings.chunks:
        return state, [Notice(level="info", text=f"rebuy from {label}: all traders already started for {state.symbol}")]
    return _start_fresh(state, f"rebuy triggered by {label}")


def _trader_reported(state: LeaderState, event: TraderReported) -> Step:
    trader = event.state
    if trader.trader_id not in state.traders:
        return state, [Notice(level="warning", text=f"report from {trader.label}, which this leader does not know")]
    if trader.phase == "DONE":
        done = _without(state, trader.trader_id)
        note = Notice(level="info", text=f"trader {trader.label} finished its cycle")
        if done.shutting_down or done.untradable or done.stopped:
            return done, [note, *_stopped_if_empty(done)]
        new_state, commands = _start_fresh(done, f"replacing {trader.label}")
        return new_state, [note, *commands]
    if trader.phase == "FAILED":
        gone = _without(state, trader.trader_id)
        note = Notice(level="error", text=f"trader {trader.label} stopped, not replaced: {trader.reason}")
        return gone, [note, *_stopped_if_empty(gone)]
    if trader.phase == "UNTRADABLE":
        gone = _without(state, trader.trader_id, untradable=trader.reason)
        text = f"cannot trade {state.symbol}: {trader.reason}; no trader starts until the settings change"
        notes = [] if state.untradable == trader.reason else [Notice(level="warning", text=text)]
        return gone, [*notes, *_stopped_if_empty(gone)]
    return replace(state, traders={**state.traders, trader.trader_id: trader}), []


def _trader_died(state: LeaderState, event: TraderDied) -> Step:
    trader = state.traders.get(event.trader_id)
    if trader is None or state.stopped:  # stopped: its death was asked for
        return state, []
    when = f" in {event.delay_s:g} s" if event.delay_s else ""
    note = Notice(level="warning", text=f"trader {trader.label} died in {trader.phase}; "
                                        f"restarting it from its cached state{when}")
    return state, [note, StartTrader(state=trader, restart=True, delay_s=event.delay_s)]


def _trader_given_up(state: LeaderState, event: TraderGivenUp) -> Step:
    trader = state.traders.get(event.trader_id)
    if trader is None:
        return state, []
    gone = _without(state, trader.trader_id)
    text = (f"giving up on trader {trader.label}: {event.why}; "
            f"last state {trader.phase}, its open orders stay on the exchange")
    return gone, [Notice(level="error", text=text), *_stopped_if_empty(gone)]


def _settings_changed(state: LeaderState, event: SettingsChanged) -> Step:
    state = replace(state, settings=event.settings, untradable=None)
    if state.traders or state.shutting_down or state.stopped:
        return state, []
    return _start_fresh(state, "settings changed")


def _shutdown_requested(state: LeaderState, event: ShutdownRequested) -> Step:
    state = replace(state, shutting_down=True)
    return state, _stopped_if_empty(state)


HANDLERS: dict[type, Callable[[LeaderState, Message], Step]] = {
    TradingStarted: _trading_started,
    TradingStopped: _trading_stopped,
    RebuyRequested: _rebuy_requested,
    TraderReported: _trader_reported,
    TraderDied: _trader_died,
    TraderGivenUp: _trader_given_up,
    SettingsChanged: _settings_changed,
    ShutdownRequested: _shutdown_requested,
}


def step(state: LeaderState, event: Message) -> Step:
    """Apply one event; returns the new state and the commands to carry out."""
    handler = HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"leader of {state.symbol}: no handler for {type(event).__name__}")
    return handler(state, event)
