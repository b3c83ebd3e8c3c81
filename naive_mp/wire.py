"""Everything that crosses a socket: addresses, topics and msgpack codecs.

Each socket carries one Union of tagged msgspec Structs and has one
decoder for it, so a rogue or garbled frame fails to decode with a message
naming the socket instead of reaching the core. Core events and commands
(naive_mp.core.messages) travel as they are, inside these envelopes.
"""

from decimal import Decimal
from pathlib import Path

import logging

import msgspec

from naive_mp.core.messages import (
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TradeSeen,
)
from naive_mp.core.settings import Filters, Settings
from naive_mp.exchange.endpoints import Endpoints
from naive_mp.core.state import TraderState
from naive_mp.logs import Throttle

log = logging.getLogger("naive_mp.wire")

# -- where every socket lives (all inside the run directory, mode 0700) ------

def address(run_dir: str | Path, name: str) -> str:
    """ipc:// address of socket `name` (e.g. "trades", "leader-XRPUSDT")."""
    return f"ipc://{Path(run_dir) / (name + '.sock')}"


def leader_socket(symbol: str) -> str:
    return f"leader-{symbol}"


# -- topics: a trailing space so XRP does not also match XRPUSDT ---------------


def trade_topic(symbol: str) -> bytes:
    return f"{symbol} ".encode()


def update_topic(symbol: str, trader_id: int) -> bytes:
    return f"{symbol}#{trader_id} ".encode()


def lockstep_topic(symbol: str) -> bytes:
    """Lockstep notices for a symbol's leader (prefix of no trader's topic)."""
    return f"{symbol}! ".encode()


# Stream ends, for leaders: they need no trade, and would wake on every one under the symbol's topic.
END_TOPIC = b"!end "


class Wire(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Base of the envelopes: compact (array-like) and tagged by class name."""


# -- trades PUB (streamer -> gateway, traders, leaders) ------------------------


class Trade(msgspec.Struct, frozen=True, array_like=True):
    """One trade; the live market also gives its quantity and side, which `record` writes to tapes."""

    trade_id: int
    price: Decimal
    time_us: int
    qty: Decimal | None = None
    buyer_maker: bool | None = None


class TradeBatch(Wire):
    """Consecutive trades of one symbol; `seq` numbers the first (per symbol, from 1)."""

    symbol: str
    seq: int
    sent_ns: int  # CLOCK_MONOTONIC when published, for tick-to-order latency
    trades: list[Trade]

    def events(self):
        for trade in self.trades:
            yield TradeSeen(symbol=self.symbol, trade_id=trade.trade_id, price=trade.price, time_us=trade.time_us)


class Welcome(Wire):
    """Published when a subscription arrives: a subscriber that receives it is live.

    `last_seq` is set once the topic's stream has ended: a late subscriber has nothing to wait for.
    """

    topic: str
    last_seq: int | None = None


class StreamEnded(Wire):
    """The tape is over: `last_seq` trades of `symbol` were sent."""

    symbol: str
    last_seq: int


# -- acks PULL (gateway, leaders -> streamer) ----------------------------------


class Ready(Wire):
    """A consumer of the trade stream is subscribed and listening."""

    role: str
    symbol: str | None = None


class Handled(Wire):
    """Lockstep: `role` finished everything trade `seq` of `symbol` caused.

    A leader adds `quiet`, the open band of prices at which none of its traders
    acts now (core.order.quiet_band): the streamer need not send such trades.
    """

    role: str
    symbol: str
    seq: int
    quiet: tuple[Decimal | None, Decimal | None] | None = None


# -- gateway ROUTER (traders -> gateway) ---------------------------------------


class Place(Wire):
    """Place an order; idempotent by client order id."""

    req_id: int
    order: PlaceOrder
    cause_ns: int = 0  # sent_ns of the trade batch that caused it (latency)


class Query(Wire):
    """Ask for the order with this client order id."""

    req_id: int
    client_order_id: str


class Cancel(Wire):
    req_id: int
    client_order_id: str


class OrderInfo(msgspec.Struct, frozen=True, array_like=True):
    order_id: int
    client_order_id: str
    side: str
    price: Decimal
    quantity: Decimal
    status: str
    filled_trade_id: int | None
    received: Decimal | None = None  # live: what a filled BUY brought in, net of a fee taken in the base asset
    executed: Decimal | None = None  # live: how much of it filled (a SELL canceled part-filled sells the rest)


class GatewayReply(Wire):
    """The answer to Place/Query/Cancel: the order, or the exchange's refusal."""

    req_id: int
    order: OrderInfo | None = None
    code: int = 0
    reason: str = ""


# -- updates PUB (gateway -> traders, topic SYMBOL#ID) -------------------------


class Filled(Wire):
    fill: OrderFilled
    cause_ns: int = 0  # sent_ns of the trade batch that filled it (latency of the SELL it causes)


class Canceled(Wire):
    """One of the trader's open orders was canceled at the exchange (by a request, or anyone)."""

    event: OrderCanceled


class Refused(Wire):
    """Live: the exchange refused an order the gateway took (a Place is answered PENDING_NEW at once).

    `retry_after_s` > 0: not the trader's fault (insufficient balance, a rate limit or
    ban, an outcome still unknown): it keeps its state and places the same order again
    then. 0: a refusal for good (a filter failure is our bug): the trader fails.
    """

    event: OrderRejected
    retry_after_s: float = 0.0


class Crossed(Wire):
    """Lockstep: the gateway handled trade `seq`; these are the fills it caused."""

    symbol: str
    seq: int
    trade: Trade
    fills: list[OrderFilled]


class Hello(Wire):
    """A trader process is up (and, free-running, receiving its trades)."""

    trader_id: int
    pid: int


class Report(Wire):
    """A trader's new state. Acked by `Ack` once the leader has stored it."""

    req_id: int
    state: TraderState
    orders: int = 0


class RebuyNotice(Wire):
    """The price fell under the trader's rebuy threshold: one more trader, please.

    It carries the trader's new state, so the leader stores the notice and the
    state that says it was sent in one commit. Acked by `Ack`.
    """

    req_id: int
    state: TraderState
    orders: int = 0


class Drained(Wire):
    """Free-running: the trader handled every trade up to the end of the stream."""

    seq: int
    lost: int = 0


class Ack(Wire):
    req_id: int


class Handle(Wire):
    """Lockstep: the leader hands a trader one event to handle now."""

    seq: int
    event: TradeSeen | OrderFilled | OrderRejected


class Done(Wire):
    """Lockstep: the trader handled `seq`; its new state, and whether it asks for a rebuy."""

    seq: int
    state: TraderState
    orders: int = 0
    rebuy: bool = False


class TraderBeat(Wire):
    """A trader is alive: sent to its leader about once a second, which kills a trader silent too long.

    `lost`: trades this process found missing from its stream so far (counted in the run's lost events).
    """

    lost: int = 0
    waiting: str = ""  # live: why its order waits to be placed again (a refusal to retry), for status


# -- control ROUTER (CLI and children -> supervisor) ---------------------------


class ProcessInfo(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    pid: int
    symbol: str | None = None
    trader_id: int | None = None
    state: str = ""
    orders: int = 0
    restarts: int = 0
    started_at: float = 0.0  # wall-clock seconds


class Sample(msgspec.Struct, frozen=True, array_like=True):
    """One value of a metric (naive_mp.runtime.metrics names them all)."""

    name: str
    value: float
    labels: dict[str, str] = {}


class Heartbeat(Wire):
    """A child is alive; leaders include their traders; `samples` are its metrics now."""

    process: ProcessInfo
    children: list[ProcessInfo] = []
    samples: list[Sample] = []


class StatusRequest(Wire):
    pass


class StatusReply(Wire):
    supervisor: ProcessInfo
    processes: list[ProcessInfo]


class StopRequest(Wire):
    pass


class StopReply(Wire):
    pid: int


class ReloadRequest(Wire):
    """Have the leaders read the store again: `what` is "settings" or "trading"."""

    what: str


class ReloadReply(Wire):
    leaders: int


# -- what every child is told before it forks ---------------------------------


class LiveTiming(msgspec.Struct, frozen=True, kw_only=True):
    """How patient the live gateway is (tests shorten every one of them)."""

    resolve_s: float = 30.0  # an order whose placing had no answer is asked for this long
    poll_s: float = 1.0
    rounds: int = 3
    reconcile_s: float = 60.0  # every open order asked for over REST this often, stream or not
    insufficient_retry_s: float = 30.0  # -2010 insufficient balance: the trader tries again after this
    key_retry_s: float = 60.0  # our API key refused while running (revoked?): orders tried again after this
    request_timeout_s: float = 10.0


class RunSpec(msgspec.Struct, frozen=True, kw_only=True):
    """The whole run's description, built by the supervisor before forking."""

    run_dir: str
    symbols: list[str]
    run_id: int = 0  # when `start` began: tells this run's files from an earlier run's
    settings: dict[str, Settings]
    filters: dict[str, Filters]
    replay: list[str] = []
    replay_symbols: list[str] = []
    speed: float | None = None  # None: as fast as the system takes it
    lockstep: bool = False
    exit_at_end: bool = False
    log_level: int = 20
    log_format: str = "text"  # or "json": one object a line
    replay_trades: list[int] = []  # trades in each tape, for the replay's progress and ETA
    progress: bool = False  # log the replay's progress now and then (a person watches the terminal)
    endpoints: Endpoints | None = None  # Binance's, for the live trade stream
    record_dir: str | None = None  # live: also write the trades published to daily tapes here
    stream_silence_s: float = 60.0  # live: a connection silent this long is replaced
    stream_max_age_s: float = 23.5 * 3600  # live: replaced before Binance's 24 h cut
    metrics_addr: str | None = None  # HOST:PORT the supervisor serves Prometheus metrics on
    testnet: bool = False  # Binance's spot test network (spec.endpoints are its)
    live: bool = False  # real orders on Binance (`start --live`): the gateway is exchange.binance_gateway's
    live_timing: LiveTiming = LiveTiming()
    trader_stale_s: float = 10.0  # a trader silent this long (no message, not even a TraderBeat) is killed


StreamMessage = TradeBatch | Welcome | StreamEnded
AckMessage = Ready | Handled
GatewayRequest = Place | Query | Cancel
UpdateMessage = Filled | Canceled | Refused | Welcome | Crossed
TraderToLeader = Hello | Report | RebuyNotice | Done | Drained | TraderBeat
LeaderToTrader = Ack | Handle
ControlMessage = Heartbeat | StatusRequest | StopRequest | ReloadRequest
ControlReply = StatusReply | StopReply | ReloadReply

encode = msgspec.msgpack.Encoder().encode


class WireError(ValueError):
    """A frame that is not what its socket carries."""


class Decoder:
    """Decodes the frames of one socket into its Union, naming the socket on error."""

    def __init__(self, socket_name: str, union):
        self.socket_name = socket_name
        self._decoder = msgspec.msgpack.Decoder(union)
        self._rogue = Throttle(log)  # a flood of garbage writes a few lines, not one per frame

    def __call__(self, frame: bytes):
        try:
            return self._decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise WireError(f"rogue message on the {self.socket_name} socket: {exc}") from None

    def or_drop(self, frame: bytes):
        """The message, or None after a warning naming the socket: a rogue frame never crashes a process.

        The warnings are rate-limited (naive_mp.logs.Throttle).
        """
        try:
            message = self(frame)
        except WireError as exc:
            self._rogue.warning("%s (dropped)", exc)
            return None
        if self._rogue.held:  # a flood that stopped: its count is logged once its interval is over
            self._rogue.flush()
        return message


def split_topic(frame: bytes) -> tuple[bytes, bytes]:
    """(topic including its trailing space, payload) of a one-frame PUB message."""
    cut = frame.find(b" ") + 1  # no space: no topic, and the payload will not decode
    return frame[:cut], frame[cut:]
