"""Prometheus metrics: each process puts samples in its heartbeat, the supervisor serves them.

Only the supervisor listens on HTTP (`start --metrics-addr HOST:PORT`): the
children already beat to it once a second, so their counters ride along as
`wire.Sample`s and a scrape reads the latest of each. Every metric is named
and described here, once.
"""

import logging

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from naive_mp.wire import Sample

log = logging.getLogger("naive_mp.metrics")

# name -> (kind, help, label names)
METRICS = {
    "naive_mp_trades_received": ("counter", "Trade events the gateway applied", ("symbol",)),
    "naive_mp_trades_lost": ("counter", "Trade events missing from the stream (a gap in its numbers)", ("symbol",)),
    "naive_mp_trades_sent": ("counter", "Trade events the streamer published", ()),
    "naive_mp_orders_placed": ("counter", "Orders the exchange accepted", ("symbol",)),
    "naive_mp_orders_filled": ("counter", "Orders filled", ("symbol",)),
    "naive_mp_orders_refused": ("counter", "Orders the exchange refused, by error code", ("symbol", "code")),
    "naive_mp_fills": ("counter", "Fills the gateway published", ("symbol",)),
    "naive_mp_realized_pnl": ("gauge", "Realized P&L of completed cycles, in the quote currency", ("symbol", "quote")),
    "naive_mp_traders_alive": ("gauge", "Traders the leader of a symbol keeps", ("symbol",)),
    "naive_mp_restarts": ("counter", "Restarts of a process by the supervisor (leaders' traders: by the leader)",
                          ("role", "name")),
    "naive_mp_stream_reconnects": ("counter", "Reconnections of the live trade stream", ()),
    "naive_mp_stream_backfilled_trades": ("counter", "Trades fetched over REST to fill gaps in the stream", ()),
    "naive_mp_user_stream_up": ("gauge", "Live: 1 while the Binance user data stream is subscribed", ()),
    "naive_mp_user_stream_subscriptions": ("counter", "Live: subscriptions of the user data stream (reconnects + 1)",
                                           ()),
    "naive_mp_binance_ban_seconds": ("gauge", "Live: seconds left of a Binance IP ban (418); no order goes out", ()),
    "naive_mp_orders_open": ("gauge", "Live: our orders open on Binance (or being placed)", ("symbol",)),
    "naive_mp_tick_to_order_seconds": ("histogram", "From a trade's publication to the gateway receiving the order "
                                                    "it caused", ()),
}

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class LatencyHistogram:
    """Cumulative bucket counts of one latency, cheap to keep in a hot loop."""

    def __init__(self):
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total_s = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total_s += seconds

    def samples(self, name: str) -> list[Sample]:
        running, out = 0, []
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts):
            running += count
            out.append(Sample(name=f"{name}_bucket", value=running, labels={"le": bound}))
        out.append(Sample(name=f"{name}_sum", value=self.total_s))
        out.append(Sample(name=f"{name}_count", value=running))
        return out


class BeatCollector:
    """A prometheus_client collector over the supervisor's latest heartbeats (read at scrape time)."""

    def __init__(self, samples_now):
        self.samples_now = samples_now  # () -> list[Sample]

    def collect(self):
        samples = self.samples_now()
        for name, (kind, text, labels) in METRICS.items():
            if kind == "histogram":
                yield from self._histogram(name, text, samples)
                continue
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text, labels=labels)
            for sample in samples:
                if sample.name == name:
                    family.add_metric([sample.labels.get(k, "") for k in labels], sample.value)
            yield family

    @staticmethod
    def _histogram(name: str, text: str, samples: list[Sample]):
        buckets = [(s.labels["le"], s.value) for s in samples if s.name == f"{name}_bucket"]
        total = next((s.value for s in samples if s.name == f"{name}_sum"), 0.0)
        family = HistogramMetricFamily(name, text)
        if buckets:
            family.add_metric([], buckets, total)
        yield family


def supervised_samples(children) -> list[Sample]:
    """The supervisor's children's latest metrics, and the restarts of each (read from the scrape's thread)."""
    out = []
    for child in list(children):
        beat = child.beat  # one read: the main thread may replace it meanwhile
        out += beat.samples if beat is not None else []
        out.append(Sample(name="naive_mp_restarts", value=child.restarts,
                          labels={"role": child.spec.role, "name": child.spec.name}))
        for trader in beat.children if beat is not None else ():
            out.append(Sample(name="naive_mp_restarts", value=trader.restarts,
                              labels={"role": "trader", "name": f"{trader.symbol}#{trader.trader_id}"}))
    return out


def serve(address: str, samples_now) -> None:
    """Serve /metrics on `address` (HOST:PORT) from a daemon thread."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BeatCollector(samples_now))
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    log.info("metrics on http://%s:%s/metrics", host or "127.0.0.1", port)
