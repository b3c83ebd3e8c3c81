#!/usr/bin/env python3
"""The HTML report of a busy day: its size, how long it takes to make, and to open in headless chromium.

    python bench/report.py [TAPE] [--out DIR]

The day is traded with settings that place about 50,000 orders (150 traders,
buying at the market, a profit target that sells at once, a new trader on any
dip). Targets: the HTML under 10 MB; chromium opening and painting it under
3 s. The yardstick, measured in the same run: chromium opening a trivial page
(its own start-up, which every page pays).
"""

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "report"))
import headless  # noqa: E402
from naive_mp.backtest.run import run_backtest  # noqa: E402
from naive_mp.data.tapes import symbol_from_path  # noqa: E402
from naive_mp.core.settings import Filters, Settings  # noqa: E402
from naive_mp.report import page  # noqa: E402

DEFAULT_TAPE = ROOT.parent / "shared" / "data" / "tapes" / "XRPUSDT-trades-2019-06-01.zip"
BUSY = Settings(chunks=150, budget=Decimal("30000"), buy_down_interval=Decimal("0"),
                profit_target=Decimal("-0.003"), rebuy_interval=Decimal("0.00001"))
FILTERS = Filters(tick_size=Decimal("0.00001"), step_size=Decimal("0.1"), min_qty=Decimal("0.1"),
                  min_notional=Decimal("10"))
TRIVIAL = ("<!DOCTYPE html><html><head><title>yardstick</title></head>"
           "<body><h1>Hello</h1><p>A trivial page.</p></body></html>")


def timed(work):
    began = time.perf_counter()
    value = work()
    return value, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tape", nargs="?", default=str(DEFAULT_TAPE))
    parser.add_argument("--out", help="Keep the report here (default: a temporary folder).")
    args = parser.parse_args()
    if not Path(args.tape).exists():
        print(f"missing {args.tape}: the benchmarks read ../shared/data", file=sys.stderr)
        return 1
    if not headless.chromium():
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 1
    symbol = symbol_from_path(args.tape)
    with tempfile.TemporaryDirectory(prefix="naive-mp-bench-report-") as scratch:
        out = Path(args.out or scratch)
        result, traded_s = timed(lambda: run_backtest([args.tape], [symbol], {symbol: BUSY}, {symbol: FILTERS}))
        parts = page.sections(result.per_symbol, result.reports, result.orders, result.fills, result.tapes,
                              {symbol: BUSY})
        text, html_s = timed(lambda: page.page(f"naive-mp backtest: {symbol}", Path(args.tape).name, parts))
        image, png_s = timed(lambda: page.png(parts))
        report, trivial = out / "report.html", out / "trivial.html"
        report.write_text(text)
        (out / "report.png").write_bytes(image)
        trivial.write_text(TRIVIAL)
        # The same window for both: the report's first screen is what a person sees on opening it.
        # Taken in turns, best of 5 each, so that a busy machine slows both alike.
        trivial_s = report_s = full_s = float("inf")
        for _ in range(5):
            trivial_s = min(trivial_s, headless.timed_screenshot(trivial, out / "trivial.png", runs=1, height=1400))
            report_s = min(report_s, headless.timed_screenshot(report, out / "shot.png", runs=1, height=1400))
            full_s = min(full_s, headless.timed_screenshot(report, out / "full.png", runs=1,
                                                           height=1400 + 900 * len(parts)))
        print(f"code: {ROOT} (naive_mp.report.page over naive_mp.report.charts)")
        print(f"tape {Path(args.tape).name}: {len(result.tapes[0]):,} trades; {len(result.orders):,} orders "
              f"({sum(o.status == 'FILLED' for o in result.orders):,} filled) traded in {traded_s:.2f} s")
        print(f"HTML: {len(text.encode()) / 1e6:.2f} MB (target < 10 MB), made in {html_s:.2f} s; "
              f"PNG: {len(image) / 1e3:.0f} KB, made in {png_s:.2f} s")
        print(f"chromium, open and paint (best of 5): trivial page {trivial_s:.2f} s (yardstick); "
              f"report {report_s:.2f} s (target < 3 s), {report_s - trivial_s:+.2f} s over the yardstick; "
              f"whole page {full_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
