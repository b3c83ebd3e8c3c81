#!/usr/bin/env python3
"""Backtest speed and memory on a real day of trades, beside a yardstick from the same run.

    python bench/backtest.py [TAPE] [--repeat N]

Prints: bare read of the file (zip inflate only: the yardstick), tape parse,
engine time and events/s (best of N), the whole `naive-mp backtest` command
as a subprocess (wall time, peak RSS), and the same engine with quiet-trade
skipping off, so the gain of skipping is measured too.
"""

import argparse
from decimal import Decimal
import resource
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from naive_mp.backtest.engine import Backtest  # noqa: E402
from naive_mp.data.tapes import read_tape  # noqa: E402
from naive_mp.core.settings import Filters, Settings  # noqa: E402

DEFAULT_TAPE = ROOT.parent / "shared" / "data" / "tapes" / "XRPUSDT-trades-2019-06-01.zip"


def best(n, fn):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bare_read(path: Path) -> bytes:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            return z.read(z.namelist()[0])
    return path.read_bytes()


def engine_run(tape, filters, skip_quiet=True):
    engine = Backtest({tape.symbol: Settings()}, {tape.symbol: filters}, skip_quiet=skip_quiet)
    engine.run_tape(tape)
    return engine


def whole_command(path: Path, flags: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "naive_mp", "backtest", str(path), *flags, "--json"],
                   check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak_kib, before) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tape", nargs="?", default=str(DEFAULT_TAPE))
    parser.add_argument("--tick-size", default="0.00001")
    parser.add_argument("--step-size", default="0.1")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = Path(args.tape)
    filters = Filters(tick_size=Decimal(args.tick_size), step_size=Decimal(args.step_size))

    t_first_read, _ = best(1, lambda: read_tape(path))  # first call: cold caches count
    t_bare, _ = best(args.repeat, lambda: bare_read(path))
    t_read, tape = best(args.repeat, lambda: read_tape(path))
    t_engine, engine = best(args.repeat, lambda: engine_run(tape, filters))
    t_full, full = best(1, lambda: engine_run(tape, filters, skip_quiet=False))
    same = engine.exchange.orders == full.exchange.orders
    tracemalloc.start()
    engine_run(tape, filters)
    _, engine_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t_cmd, cmd_rss = whole_command(path, ["--tick-size", args.tick_size, "--step-size", args.step_size])

    n = len(tape)
    print(f"tape                 {path.name}: {n:,} trades, {len(engine.exchange.orders)} orders")
    print(f"bare read (yardstick) {t_bare * 1e3:8.1f} ms   (zip inflate / file read, best of {args.repeat})")
    print(f"tape read            {t_read * 1e3:8.1f} ms   = {t_read / t_bare:.2f}x the bare read "
          f"(first call {t_first_read * 1e3:.1f} ms)")
    print(f"engine               {t_engine * 1e3:8.1f} ms   = {n / t_engine:,.0f} events/s (best of {args.repeat})")
    print(f"engine, every event  {t_full * 1e3:8.1f} ms   = {n / t_full:,.0f} events/s; same orders: {same}")
    print(f"engine peak memory   {engine_peak / 2**20:8.2f} MiB (tracemalloc, Python objects)")
    print(f"whole command        {t_cmd * 1e3:8.1f} ms   peak RSS {cmd_rss:.1f} MiB "
          "(naive-mp backtest --json, one subprocess)")


if __name__ == "__main__":
    main()
