"""The report's charts: data preparation, the HTML page and PNG, and a real headless browser opening the page."""

import html
import io
import json
import re
from decimal import Decimal as D

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import headless
from naive_mp.backtest.run import run_backtest
from naive_mp.backtest.synth import write_synthetic_tape
from naive_mp.cli import main
from naive_mp.exchange.paper import Fill, Order
from naive_mp.core.settings import Filters, Settings
from naive_mp.report import charts
from naive_mp.report.charts import Prices, downsample, drawdown, equity, markers, traders_alive
from naive_mp.report.symbols import PriceTrack, max_drawdown

BLUE, ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # charts.SIDE_COLOURS: BUY, SELL


def order(order_id, trader, side, status, placed, filled=None, price="1.00", cycle=1):
    return Order(order_id=order_id, client_order_id=f"XRPUSDT-{trader}-{cycle}-{side[0]}", symbol="XRPUSDT",
                 trader_id=trader, side=side, price=D(price), quantity=D("10"), status=status,
                 placed_trade_id=placed, filled_trade_id=filled)


def prices(values, first_id=1, step_us=1_000_000):
    ids = np.arange(first_id, first_id + len(values), dtype=np.int64)
    return Prices(ids=ids, times_us=1_559_347_200_000_000 + (ids - first_id) * step_us, prices=np.array(values, float))


# -- data preparation ---------------------------------------------------------------------


def test_traders_are_alive_from_their_first_order_to_their_sell_fill_or_the_end():
    orders = [order(1, 1, "BUY", "FILLED", placed=10, filled=12), order(2, 1, "SELL", "FILLED", placed=12, filled=20),
              order(3, 2, "BUY", "CANCELED", placed=15, cycle=1), order(4, 2, "BUY", "FILLED", placed=16, filled=18,
                                                                          cycle=2),
              order(5, 2, "SELL", "NEW", placed=18, cycle=2),  # never sold: alive to the end
              order(6, 3, "BUY", "NEW", placed=20)]  # starts on the trade trader 1 finishes on
    at, counts = traders_alive(orders, end_trade_id=30)
    assert at.tolist() == [10, 15, 20] and counts.tolist() == [1, 2, 2]  # never 3 on trade 20: ends come first
    assert traders_alive([], 30)[0].size == 0


def test_traders_alive_never_exceed_the_engines_count(tmp_path):
    tape = write_synthetic_tape(tmp_path, symbol="DEMOUSDT", trades=8000, seed=4)
    filters = Filters(tick_size=D("0.00001"), step_size=D("0.1"), min_qty=D("0.1"), min_notional=D("1"))
    result = run_backtest([str(tape)], ["DEMOUSDT"], {"DEMOUSDT": Settings(chunks=8)}, {"DEMOUSDT": filters})
    _, counts = traders_alive(result.orders, int(result.tapes[0].ids[-1]))
    # The engine counts a new trader one trade before its first order: never fewer than the orders show.
    assert 1 <= counts.max() <= result.per_symbol[0].max_traders
    assert counts.min() >= 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_downsampling_keeps_every_columns_extremes_and_both_ends(seed):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(0, 5, 200_000)).astype(float)  # repeated times too, like a tape's
    y = np.cumsum(rng.normal(size=x.size))
    y[rng.integers(0, x.size, 5)] += rng.choice([-100, 100], 5)  # lone spikes must survive
    xs, ys = downsample(x, y, columns=300)
    assert len(xs) <= 4 * 300 and np.all(np.diff(xs) >= 0)
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (x[0], y[0], x[-1], y[-1])
    assert ys.max() == y.max() and ys.min() == y.min()
    column = np.minimum(((x - x[0]) / (x[-1] - x[0]) * 300).astype(int), 299)
    kept = np.minimum(((xs - x[0]) / (x[-1] - x[0]) * 300).astype(int), 299)
    for c in rng.choice(np.unique(column), 40, replace=False):
        assert ys[kept == c].max() == y[column == c].max() and ys[kept == c].min() == y[column == c].min()


def test_short_series_are_not_downsampled():
    x, y = np.arange(100.0), np.arange(100.0)
    assert downsample(x, y, columns=30)[0] is x


def test_every_order_is_one_marker_filled_where_it_filled_others_where_placed():
    p = prices([1.0] * 10)
    orders = [order(1, 1, "BUY", "FILLED", placed=2, filled=4, price="0.98"),
              order(2, 1, "SELL", "NEW", placed=4, price="1.02"),
              order(3, 2, "BUY", "NEW", placed=5, price="0.97"),
              order(4, 3, "BUY", "CANCELED", placed=6, price="0.96"),
              order(5, 4, "SELL", "FILLED", placed=7, filled=9, price="1.01")]
    found = {(m.side, m.kind): m for m in markers(orders, p)}
    assert sum(len(m.times_us) for m in found.values()) == len(orders)
    start = p.times_us[0]
    assert ((found["BUY", "filled"].times_us - start) // 1_000_000).tolist() == [3]  # trade 4
    assert found["BUY", "filled"].prices.tolist() == [0.98]
    assert ((found["SELL", "open"].times_us - start) // 1_000_000).tolist() == [3]  # placed on trade 4
    assert ((found["BUY", "open"].times_us - start) // 1_000_000).tolist() == [4]
    assert found["BUY", "canceled"].prices.tolist() == [0.96]
    assert ((found["SELL", "filled"].times_us - start) // 1_000_000).tolist() == [8]
    assert len(found["SELL", "canceled"].times_us) == 0


def test_equity_and_drawdown_agree_with_the_reports_max_drawdown():
    # test_symbols' example: buy 10 at 1.00 on trade 2, sell at 1.20 on trade 6; max drawdown exactly 8.00
    values = [1.00, 1.00, 1.50, 0.70, 1.00, 1.20]
    fills = [Fill(order_id=1, side="BUY", price=D("1.00"), quantity=D("10"), fee=D("0.01"), trade_id=2),
             Fill(order_id=2, side="SELL", price=D("1.20"), quantity=D("10"), fee=D("0.012"), trade_id=6)]
    curve = equity(fills, prices(values))
    assert np.allclose(curve, [0, -0.01, 4.99, -3.01, -0.01, 1.978])
    track = PriceTrack(ids=[np.arange(1, 7)], prices=[np.array([int(v * 100) for v in values])], decimals=[2])
    assert -drawdown(curve).min() == pytest.approx(float(max_drawdown(fills, track)))
    assert drawdown(curve)[2] == 0 and equity([], prices(values)).tolist() == [0.0] * 6


# -- the page and the PNG, from the command line ------------------------------------------------

CONFIG = """
[symbols.DEMOUSDT]
tick_size = "0.00001"
step_size = "0.1"
min_qty = "0.1"
min_notional = "1"
[symbols.BUSYUSDT]
tick_size = "0.00001"
step_size = "0.1"
min_qty = "0.1"
min_notional = "1"
chunks = 40
budget = "4000"
buy_down_interval = "0"
profit_target = "-0.003"
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A backtest of two synthetic tapes with --report: a sparse symbol drawn as vectors, a busy one rasterized."""
    folder = tmp_path_factory.mktemp("report")
    tapes = [write_synthetic_tape(folder, symbol=s, trades=30_000, seed=seed) for s, seed in
             (("DEMOUSDT", 3), ("BUSYUSDT", 5))]
    (folder / "naive-mp.toml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(charts, "RASTER_ABOVE", 200)  # BUSYUSDT's ~500 orders take the dense path
        out = CliRunner().invoke(main, ["backtest", *map(str, tapes), "--config", str(folder / "naive-mp.toml"),
                                        "--report", str(folder / "report.html")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return folder / "report.html", out.output


def test_the_page_has_a_title_the_backtest_table_and_a_section_per_symbol(report):
    page, printed = report
    text = page.read_text()
    assert "<title>naive-mp backtest: DEMOUSDT, BUSYUSDT</title>" in text
    rows = [[html.unescape(c) for c in re.findall(r'<td class="\w+">(.*?)</td>', row) if c]
            for row in re.findall(r"<tr>(<td.*?)</tr>", text)]
    printed_rows = [re.split(r"\s{2,}", line.strip()) for line in printed.splitlines()[1:4]]
    assert len(rows) == 3 and rows == printed_rows  # the readable table's rows, cell for cell, total included
    held = next(line for line in printed.splitlines() if line.startswith("DEMOUSDT:"))
    assert f'<p class="note">{html.escape(held)}</p>' in text
    assert re.findall(r'<section class="symbol" id="(\w+)">', text) == ["DEMOUSDT", "BUSYUSDT"]
    sections = text.split('<section class="symbol"')[1:]
    assert "<image" not in sections[0] and sections[1].count("<image") >= 1  # BUSYUSDT's markers: one image
    assert "data:image/png;base64," in sections[1]


def test_the_page_fetches_nothing(report):
    text = report[0].read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", text, re.I) and "<script" not in text
    assert "<link" not in text and "@import" not in text


def test_the_png_is_a_readable_image_of_both_symbols(report):
    data = report[0].with_suffix(".png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(data) < 2_000_000
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.size == (1200, 1700)  # 12 x 8.5 inches per symbol at 100 dpi
    pixels = np.asarray(image)
    assert _not_blank(pixels) and _has(pixels, BLUE) and _has(pixels, ORANGE)


def test_png_alone_and_bad_output_folders(tmp_path):
    tape = write_synthetic_tape(tmp_path, symbol="DEMOUSDT", trades=3000, seed=1)
    flags = ["--tick-size", "0.00001", "--step-size", "0.1"]
    out = CliRunner().invoke(main, ["backtest", str(tape), *flags, "--png", str(tmp_path / "only.png")])
    assert out.exit_code == 0 and (tmp_path / "only.png").is_file() and not list(tmp_path.glob("*.html"))
    bad = CliRunner().invoke(main, ["backtest", str(tape), *flags, "--report", str(tmp_path / "no" / "r.html")])
    assert bad.exit_code == 2 and "--report" in bad.output
    piped = CliRunner().invoke(main, ["backtest", str(tape), *flags, "--report", "-"])
    assert piped.exit_code == 0 and "<!DOCTYPE html>" in piped.output and "</html>\n" in piped.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["only.png"]  # no "-.png" beside stdout


# -- a real browser -------------------------------------------------------------------------

MEASURE = """<script>
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("figure.chart svg")].map(svg => {
    const r = svg.getBoundingClientRect();
    return {symbol: svg.parentElement.dataset.symbol, top: r.top + scrollY, width: r.width, height: r.height,
            children: svg.querySelectorAll("path, use, image").length};
  });
  const out = document.createElement("pre"); out.id = "measured"; out.textContent = JSON.stringify(charts);
  document.body.appendChild(out);
});
</script>"""


def test_chromium_lays_out_and_paints_every_chart(report, tmp_path):
    headless.need_chromium()
    measured_page = tmp_path / "measured.html"  # a copy with a test-only script; the report has none
    measured_page.write_text(report[0].read_text().replace("</body>", MEASURE + "</body>"))
    dom = headless.dump_dom(measured_page)
    charts_found = json.loads(html.unescape(re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S).group(1)))
    assert [c["symbol"] for c in charts_found] == ["DEMOUSDT", "BUSYUSDT"]
    for chart in charts_found:
        assert chart["width"] > 1000 and chart["height"] > 600 and chart["children"] > 50
    bottom = int(max(c["top"] + c["height"] for c in charts_found)) + 20
    shot = headless.screenshot(report[0], tmp_path / "shot.png", width=1300, height=bottom)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert _not_blank(pixels)
    for chart in charts_found:  # each chart, cut out of the screenshot, shows its lines and both sides' markers
        top, height = chart["top"], chart["height"]
        assert _not_blank(pixels[int(top):int(top + height)])
        panels = pixels[int(top + 0.1 * height):int(top + height)]  # under the title and the legend's markers
        assert _has(panels, BLUE) and _has(panels, ORANGE)


def test_chromium_opening_the_page_requests_nothing(report, tmp_path):
    headless.need_chromium()
    control = tmp_path / "control.html"  # proves the recorder sees a page's requests
    control.write_text('<html><body><img src="http://example.invalid/a.png"></body></html>')
    with headless.Recorder() as recorder:
        headless.dump_dom(control, proxy=recorder.port)
    assert any(b"example.invalid" in r for r in recorder.requests)
    with headless.Recorder() as recorder:
        headless.dump_dom(report[0], proxy=recorder.port)
    assert recorder.requests == []


def _not_blank(pixels: np.ndarray) -> bool:
    """More than a few colours, and a fair share of pixels that are not white."""
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    inked = np.mean(np.any(pixels < 235, axis=-1))
    return colours > 30 and inked > 0.02


def _has(pixels: np.ndarray, colour, tolerance: int = 12, at_least: int = 20) -> bool:
    """At least `at_least` pixels of about `colour` (solid markers keep their exact colour inside)."""
    close = np.all(np.abs(pixels.astype(int) - np.array(colour)) <= tolerance, axis=-1)
    return int(close.sum()) >= at_least
