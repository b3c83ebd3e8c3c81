#!/usr/bin/env python3
"""The sweep's speed: 1,000 combinations over a day's tape, beside one plain backtest of it.

    python bench/sweep.py [TAPE] [--workers N]

Grid (chapter 8 settings varied): buy_down_interval 10 values x profit_target 10
x rebuy_interval 5 x chunks 2 = 1,000 backtests. The yardstick, measured in the
same run: one plain backtest's engine time (tape already read), times 1,000,
divided by the cores: the floor a sweep can reach. Target: under 30 s.
"""

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from naive_mp.data.tapes import read_tape, symbol_from_path  # noqa: E402
from naive_mp.core.settings import Filters, Settings  # noqa: E402
from naive_mp.report.sweep import _JOB, combinations, parse_grid, run_one, sweep  # noqa: E402

DEFAULT_TAPE = ROOT.parent / "shared" / "data" / "tapes" / "XRPUSDT-trades-2019-06-01.zip"
GRID = ["buy_down_interval=0.0001:0.001:0.0001", "profit_target=-0.002:0.0025:0.0005",
        "rebuy_interval=0.001:0.005:0.001", "chunks=3,5"]
FILTERS = Filters(tick_size=Decimal("0.00001"), step_size=Decimal("0.1"), min_qty=Decimal("0.1"), min_notional=Decimal("10"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tape", nargs="?", default=str(DEFAULT_TAPE))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if not Path(args.tape).exists():
        print(f"missing {args.tape}: the benchmarks read ../shared/data", file=sys.stderr)
        return 1
    symbol = symbol_from_path(args.tape)
    began = time.perf_counter()
    tape = read_tape(args.tape, symbol)
    read_s = time.perf_counter() - began
    settings, filters = {symbol: Settings()}, {symbol: FILTERS}
    combos = combinations(settings, parse_grid(GRID))
    _JOB.update(tapes=[tape], settings=settings, filters=filters)
    plain = []
    for _ in range(5):
        began = time.perf_counter()
        run_one({})
        plain.append(time.perf_counter() - began)
    one = min(plain)
    began = time.perf_counter()
    rows = sweep([tape], settings, filters, combos, args.workers)
    took = time.perf_counter() - began
    floor = one * len(combos) / args.workers
    print(f"code: {ROOT} (naive_mp.report.sweep over naive_mp.backtest.engine)")
    print(f"tape {Path(args.tape).name}: {len(tape):,} trades, read once in {read_s * 1e3:.0f} ms")
    print(f"one plain backtest (engine + summary, best of 5): {one * 1e3:.1f} ms")
    print(f"sweep: {len(rows):,} combinations on {args.workers} workers in {took:.2f} s "
          f"({len(rows) / took:,.0f}/s); floor {floor:.2f} s (1,000 x one / workers); "
          f"{took / floor:.2f}x the floor; target < 30 s: {'met' if took < 30 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
