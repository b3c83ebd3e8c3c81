"""The report a person opens: one self-contained HTML page, and one PNG to share.

The page holds the summary table (the readable backtest table's figures)
and one section per symbol with its charts as inline SVG: no script, no
style sheet, font or image from elsewhere, so it opens offline and fetches
nothing. Dense order markers are embedded as PNG images inside the SVG
(data: URIs), which keeps a busy day's page small and quick to draw.
"""

from __future__ import annotations

import dataclasses
import html
import io
import re

import matplotlib
from matplotlib.figure import Figure

from naive_mp.backtest.report import Summary
from naive_mp.core.money import fmt
from naive_mp.exchange.paper import Fill, Order
from naive_mp.core.settings import Settings
from naive_mp.report.charts import Prices, draw, prices_of
from naive_mp.report.symbols import TABLE_COLUMNS, SymbolReport, held_lines, table_rows

CHART_SIZE = (12, 8.5)  # inches, per symbol: 1200 x 850 pixels in the PNG
PNG_DPI = 100
RASTER_DPI = 144  # the order markers' image inside the SVG: sharp on high-density screens too

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1250px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.subtitle { color: #555; margin-top: 0; }
.table { overflow-x: auto; margin: 1em 0; }
table.summary { border-collapse: collapse; font-size: 0.85em; }
table.summary th, table.summary td { padding: 0.3em 0.5em; border-bottom: 1px solid #ddd; white-space: nowrap; }
table.summary th { text-align: left; background: #f4f4f4; }
table.summary td.number { text-align: right; font-variant-numeric: tabular-nums; }
section.symbol { margin-top: 2em; }
figure.chart { margin: 0; }
figure.chart svg { display: block; width: 100%; height: auto; }
.note { color: #555; font-size: 0.9em; }
"""


@dataclasses.dataclass(frozen=True)
class Section:
    """What one symbol's section shows."""

    summary: Summary
    report: SymbolReport
    orders: list[Order]
    fills: list[Fill]
    prices: Prices
    settings: Settings | None = None


def sections(summaries: list[Summary], reports: list[SymbolReport], orders: list[Order], fills: list[Fill],
             tapes: list, settings: dict[str, Settings] | None = None) -> list[Section]:
    """One section per summary, with its symbol's orders, fills and prices from the tapes."""
    symbol_of = {o.order_id: o.symbol for o in orders}
    found = []
    for summary, report in zip(summaries, reports):
        symbol = summary.symbol
        found.append(Section(
            summary=summary, report=report, orders=[o for o in orders if o.symbol == symbol],
            fills=[f for f in fills if symbol_of.get(f.order_id) == symbol],
            prices=prices_of(tapes, symbol),
            settings=(settings or {}).get(symbol)))
    return found


# -- HTML ---------------------------------------------------------------------------------


def page(title: str, subtitle: str, parts: list[Section]) -> str:
    """The whole HTML document."""
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="subtitle">{html.escape(subtitle)}</p>',
            _summary_table(parts)]
    body += [_section(part) for part in parts]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _summary_table(parts: list[Section]) -> str:
    summaries, reports = [p.summary for p in parts], [p.report for p in parts]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    rows = []
    for row in table_rows(summaries, reports):
        # Like the text table: the symbol and the period read as words, the rest as numbers.
        cells = "".join(f'<td class="{"text" if i < 2 else "number"}">{html.escape(c)}</td>' for i, c in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    held = "".join(f'<p class="note">{html.escape(line)}</p>' for line in held_lines(summaries, reports))
    # A wide table (long amounts, several symbols) scrolls on its own; the page keeps its width.
    return f'<div class="table"><table class="summary">\n<tr>{head}</tr>\n' + "\n".join(rows) + \
        "\n</table></div>\n" + held


def _section(part: Section) -> str:
    symbol = part.summary.symbol
    orders = part.orders
    counts = {status: sum(o.status == status for o in orders) for status in ("FILLED", "NEW", "CANCELED")}
    note = (f"{len(part.prices):,} trades; {len(orders):,} orders: {counts['FILLED']:,} filled (solid), "
            f"{counts['NEW']:,} open (hollow, where placed)"
            + (f", {counts['CANCELED']:,} canceled (crosses)" if counts["CANCELED"] else "")
            + "; BUY blue ▲, SELL orange ▼.")
    settings = ""
    if part.settings is not None:
        settings = f'<p class="note">settings: {html.escape(_settings_text(part.settings))}</p>'
    anchor = html.escape(symbol, quote=True)
    return (f'<section class="symbol" id="{anchor}">\n<h2>{html.escape(symbol)}</h2>\n'
            f'<p class="note">{html.escape(note)}</p>\n{settings}\n'
            f'<figure class="chart" data-symbol="{anchor}">\n{svg(part)}\n</figure>\n</section>')


def _settings_text(settings: Settings) -> str:
    values = ((key, getattr(settings, key)) for key in settings.__struct_fields__)
    return ", ".join(f"{key}={value if isinstance(value, int) else fmt(value)}" for key, value in values)


def svg(part: Section) -> str:
    """The section's charts as an <svg> element to put inside HTML."""
    figure = _figure(CHART_SIZE)
    draw(figure, part.summary.symbol, part.report.quote, part.orders, part.fills, part.prices)
    out = io.StringIO()
    # A fixed salt per symbol: the same run gives the same file, and two
    # symbols' SVGs on one page never share a clip-path id.
    with matplotlib.rc_context({"svg.hashsalt": f"naive-mp-{part.summary.symbol}"}):
        figure.savefig(out, format="svg", dpi=RASTER_DPI, metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # names its creator's URL; not needed


# -- PNG ----------------------------------------------------------------------------------


def png(parts: list[Section]) -> bytes:
    """Every section's charts, one under the other, as one PNG image."""
    width, height = CHART_SIZE
    figure = _figure((width, height * max(1, len(parts))))
    panels = figure.subfigures(len(parts), 1, squeeze=False)[:, 0] if parts else []
    for panel, part in zip(panels, parts):
        draw(panel, part.summary.symbol, part.report.quote, part.orders, part.fills, part.prices)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return out.getvalue()


def _figure(size: tuple[float, float]) -> Figure:
    # A Figure, not pyplot: no global state, nothing kept after the file is written.
    return Figure(figsize=size, dpi=PNG_DPI, layout="constrained", facecolor="white")
