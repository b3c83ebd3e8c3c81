#!/usr/bin/env python3
"""Live trade source figures, against the fake Binance on 127.0.0.1 (tests/fakebinance.py).

    python bench/live_stream.py [--trades N]

Prints: frame decoding (msgspec, beside json.loads as python-binance does it),
latency of one trade from the fake's send to take() (the streamer's side of
the pipe), a burst's throughput end to end, REST backfill throughput (pages
of 1,000), and how long a dropped or a silent connection takes to be
replaced and caught up.
"""

import argparse
import json
import select
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakebinance import FakeBinance, synthetic_trades, wait_until  # noqa: E402
from naive_mp.exchange.binance_frames import decode_frame  # noqa: E402
from naive_mp.exchange.binance_stream import LiveTrades  # noqa: E402

FRAMES = ROOT.parent / "shared" / "data" / "binance" / "ws" / "btcusdt-trade-stream-2024-08-08.jsonl"


def best_us_per_item(function, items, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - began)
    return best / len(items) * 1e6


def take(live: LiveTrades) -> int:
    """Wait on the pipe as the streamer's poller does, then take: how many trades came."""
    select.select([live.fileno()], [], [], 0.1)
    return sum(len(t) for t in live.take().values())


def take_until(live: LiveTrades, count: int, timeout: float = 60) -> float:
    """Seconds until `count` trades were taken."""
    began, got = time.perf_counter(), 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        got += take(live)
    return time.perf_counter() - began


def decoding() -> None:
    lines = FRAMES.read_text().splitlines() if FRAMES.exists() else []
    if not lines:
        print(f"decode: skipped ({FRAMES} missing)")
        return
    print(f"decode a real combined trade frame: msgspec {best_us_per_item(decode_frame, lines):.2f} us, "
          f"json.loads {best_us_per_item(json.loads, lines):.2f} us ({len(lines)} frames, best of 5)")


def latency(fake: FakeBinance, live: LiveTrades, n: int = 300) -> None:
    samples = []
    for _ in range(n):
        live.take()
        began = time.perf_counter()
        fake.print_trades("BTCUSDT", 1)
        while not take(live):
            pass
        samples.append((time.perf_counter() - began) * 1e6)
    samples.sort()
    print(f"one trade, fake send -> take(): median {statistics.median(samples):.0f} us, "
          f"p99 {samples[int(n * 0.99) - 1]:.0f} us ({n} trades)")


def burst(fake: FakeBinance, live: LiveTrades, n: int) -> None:
    began = time.perf_counter()
    fake.print_trades("BTCUSDT", n)
    sent = time.perf_counter() - began
    took = sent + take_until(live, n)
    stats = live.stats()
    print(f"burst of {n}: fake sent it in {sent:.2f} s, all taken after {took:.2f} s ({n / took:,.0f} trades/s), "
          f"backfilled {stats.backfilled}, shed {stats.shed}")


def backfill(n: int) -> None:
    with FakeBinance({"BTCUSDT": synthetic_trades(1, n)}) as fake:
        fake.print_trades("BTCUSDT", n)
        began = time.perf_counter()
        with LiveTrades(["BTCUSDT"], last_ids={"BTCUSDT": 0}, api_url=fake.api_url, stream_url=fake.stream_url) as live:
            take_until(live, n)
            took = time.perf_counter() - began
            calls = live.stats().rest_calls
    print(f"backfill of {n} from REST: {took:.2f} s ({n / took:,.0f} trades/s, {calls} historicalTrades calls)")


def replacement(kind: str) -> None:
    with FakeBinance({"BTCUSDT": synthetic_trades(1, 2)}) as fake, \
            LiveTrades(["BTCUSDT"], api_url=fake.api_url, stream_url=fake.stream_url, silence_s=0.5) as live:
        assert wait_until(lambda: live.stats().connected)
        fake.print_trades("BTCUSDT", 1)
        assert wait_until(lambda: live.stats().live == 1)
        began = time.perf_counter()
        fake.drop() if kind == "dropped" else fake.silence()
        fake.print_trades("BTCUSDT", 1)  # missed on the old connection
        assert wait_until(lambda: live.stats().backfilled == 1, timeout=20)
        took = time.perf_counter() - began
        print(f"{kind} connection replaced and its missed trade fetched after {took * 1000:.0f} ms "
              f"(silence_s=0.5), reconnects {live.stats().reconnects}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=20_000, help="trades in the burst and the backfill")
    args = parser.parse_args()
    decoding()
    with FakeBinance({"BTCUSDT": synthetic_trades(1, args.trades + 300)}) as fake, \
            LiveTrades(["BTCUSDT"], api_url=fake.api_url, stream_url=fake.stream_url) as live:
        assert wait_until(lambda: live.stats().connected)
        latency(fake, live)
        burst(fake, live, args.trades)
    backfill(args.trades)
    replacement("dropped")
    replacement("silent")


if __name__ == "__main__":
    main()
