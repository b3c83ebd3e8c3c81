"""The backtester: drives the pure core over tapes in strategy.md's event order.

For each trade event: (1) the paper exchange fills what the trade crosses,
(2) traders whose orders filled learn it, ascending id, (3) every other
trader sees the trade, ascending id, (4) the leader handles what (2) and (3)
reported, ascending id. The order of (2)-(4) is naive_mp.core.order's, the
same the lockstep conductor follows.

Most trades change nothing: a trader waiting on a resting order, or past its
rebuy, ignores them. So after each handled event the engine asks the state
for the band of prices that would make anybody act, and jumps over every
trade inside it with a plain integer comparison. `skip_quiet=False` handles
every event in full; the orders are the same either way (tested).
"""

import logging
from decimal import Decimal

from naive_mp import logs
from naive_mp.data.tapes import Tape
from naive_mp.core import leader as leader_core
from naive_mp.core import order
from naive_mp.core import trader as trader_core
from naive_mp.core.leader import LeaderState
from naive_mp.core.messages import (
    Message,
    Notice,
    OrderRejected,
    PlaceOrder,
    RebuyRequested,
    RequestRebuy,
    TradeSeen,
    TraderReported,
    TradingStarted,
)
from naive_mp.core.money import EXACT, fmt
from naive_mp.exchange.errors import ExchangeRefused
from naive_mp.exchange.paper import PaperExchange
from naive_mp.core.settings import Filters, Settings
from naive_mp.core.state import TraderState

log = logging.getLogger("naive_mp.backtest")
trader_log = logging.getLogger("naive_mp.trader")
leader_log = logging.getLogger("naive_mp.leader")


class SymbolRun:
    """The leader of one symbol, and what the run saw of it."""

    def __init__(self, symbol: str, settings: Settings, filters: Filters):
        self.leader = LeaderState(symbol=symbol, settings=settings, filters=filters)
        self.started = False
        self.events = 0
        self.last_price: Decimal | None = None
        self.max_traders = 0


class Backtest:
    """One backtest run over any number of tapes, with one paper exchange."""

    def __init__(self, settings: dict[str, Settings], filters: dict[str, Filters],
                 *, skip_quiet: bool = True, quote_balance: Decimal | None = None):
        self.settings = settings
        self.filters = filters
        self.skip_quiet = skip_quiet
        fees = {s.fee for s in settings.values()}
        if len(fees) > 1:
            raise ValueError("one paper exchange charges one fee: symbols disagree on `fee`")
        fee = fees.pop() if fees else Settings().fee
        self.exchange = PaperExchange(filters, fee, quote_balance)
        self.symbols: dict[str, SymbolRun] = {}

    def _symbol_run(self, symbol: str) -> SymbolRun:
        run = self.symbols.get(symbol)
        if run is None:
            run = SymbolRun(symbol, self.settings[symbol], self.filters[symbol])
            self.symbols[symbol] = run
        return run

    def run_tape(self, tape: Tape) -> None:
        """Trade every event of `tape` (continuing the symbol's state if seen before)."""
        if len(tape) == 0:
            return
        run = self._symbol_run(tape.symbol)
        if not run.started:
            run.started = True
            self._lead(run, [TradingStarted()], trade_id=0)
        prices = tape.prices.tolist()
        ids = tape.ids.tolist()
        scale = Decimal(1).scaleb(-tape.price_decimals)
        i, n = 0, len(prices)
        while i < n:
            self._handle(run, ids[i], EXACT.multiply(prices[i], scale))
            if self.skip_quiet:
                lo, hi = self._quiet_band(run, tape.price_decimals)
                j = i + 1
                while j < n and lo < prices[j] < hi:
                    j += 1
                i = j
            else:
                i += 1
        run.events += n
        run.last_price = EXACT.multiply(prices[-1], scale)

    # -- one event, strategy.md's four steps ---------------------------------

    def _handle(self, run: SymbolRun, trade_id: int, price: Decimal) -> None:
        symbol = run.leader.symbol
        fills = self.exchange.on_trade(symbol, trade_id, price)
        seen = TradeSeen(symbol=symbol, trade_id=trade_id, price=price)
        reports: list[Message] = []
        for trader_id, event in order.hand_offs(run.leader.traders, fills, seen):
            reports.extend(self._step_trader(run, trader_id, event, trade_id))
        self._lead(run, order.for_leader(reports), trade_id)

    def _step_trader(self, run: SymbolRun, trader_id: int, event: Message, trade_id: int) -> list[Message]:
        """Step one trader, place its orders; returns what the leader must hear."""
        before = run.leader.traders[trader_id]
        state, commands = trader_core.step(before, event)
        to_leader: list[Message] = []
        for command in commands:
            if isinstance(command, PlaceOrder):
                state = self._place(state, command, trade_id)
            elif isinstance(command, RequestRebuy):
                trader_log.info("%s: rebuy triggered", state.label)
                to_leader.append(RebuyRequested(trader_id=trader_id))
        if state is not before:
            to_leader.insert(0, TraderReported(state=state))
        return to_leader

    def _place(self, state: TraderState, command: PlaceOrder, trade_id: int) -> TraderState:
        trader_log.info("%s: placing %s order @ %s, quantity %s", state.label,
                        command.side, fmt(command.price), fmt(command.quantity))
        try:
            self.exchange.place(command, trade_id)
        except ExchangeRefused as refused:
            rejected = OrderRejected(client_order_id=command.client_order_id, side=command.side,
                                     code=refused.code, reason=refused.message)
            state, _ = trader_core.step(state, rejected)
        return state

    def _lead(self, run: SymbolRun, events: list[Message], trade_id: int) -> None:
        for event in events:
            run.leader, commands = leader_core.step(run.leader, event)
            for command in commands:
                if isinstance(command, Notice):
                    leader_log.log(logs.LEVELS[command.level], "%s", command.text)
                # StartTrader: the new trader is in the leader's cache and acts from
                # the next event; SymbolStopped: nothing runs that needs stopping.
        run.max_traders = max(run.max_traders, len(run.leader.traders))

    # -- the band of prices nobody reacts to -----------------------------------

    def _quiet_band(self, run: SymbolRun, decimals: int) -> tuple[int, int | float]:
        """(lo, hi) in tape units: a trade strictly between them changes nothing."""
        # From the trader states: here each BUY_PLACED trader's BUY and each
        # SELL_PLACED trader's SELL are exactly the symbol's open orders.
        return order.band_in_units(order.quiet_band(run.leader.traders), decimals)
