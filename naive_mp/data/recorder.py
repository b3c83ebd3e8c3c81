"""Trades written to daily tapes in the public-data layout: `record`, and `start --record`.

One file per symbol and UTC day, `SYMBOL-trades-YYYY-MM-DD.csv`, in the
archive's columns (id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch; time
in ms), so a day traded live can be backtested later with the same trades.
Appending is idempotent: a trade id at or below the last one a file holds is
skipped, so a restarted streamer that publishes again what it had published
writes nothing twice.
"""

import datetime
import os
from pathlib import Path

from naive_mp.core.money import EXACT, fmt
from naive_mp.wire import Trade


def tape_name(symbol: str, time_us: int) -> str:
    day = datetime.datetime.fromtimestamp(time_us / 1e6, tz=datetime.timezone.utc).strftime("%Y-%m-%d")
    return f"{symbol}-trades-{day}.csv"


def line(trade: Trade) -> str:
    qty = trade.qty if trade.qty is not None else 0
    side = "True" if trade.buyer_maker else "False"
    return (f"{trade.trade_id},{fmt(trade.price)},{fmt(qty)},{fmt(EXACT.multiply(trade.price, qty))},"
            f"{trade.time_us // 1000},{side},True\n")


def last_id_in(path: Path) -> int | None:
    """The trade id of a tape's last line (None for no file, or an empty one)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read().splitlines()
    except FileNotFoundError:
        return None
    for raw in reversed(tail):
        first = raw.split(b",", 1)[0]
        if first.isdigit():
            return int(first)
    return None


class DailyTapes:
    """Appends each symbol's trades to its day's tape in `folder`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.last_ids: dict[str, int] = {}  # per file name: the last id it holds
        self.written = 0

    def write(self, symbol: str, trades: list[Trade]) -> None:
        """Append `trades` (in id order) to their days' files; each file flushed before returning."""
        by_file: dict[str, list[str]] = {}
        for trade in trades:
            name = tape_name(symbol, trade.time_us)
            if name not in self.last_ids:
                self.last_ids[name] = last_id_in(self.folder / name) or 0
            if trade.trade_id > self.last_ids[name]:
                by_file.setdefault(name, []).append(line(trade))
                self.last_ids[name] = trade.trade_id
        for name, lines in by_file.items():
            with open(self.folder / name, "a") as f:
                f.write("".join(lines))
            self.written += len(lines)

    def resume_from(self, symbols: list[str]) -> dict[str, int]:
        """The last id recorded per symbol (its newest tape here), to start a stream after it."""
        found = {}
        for symbol in symbols:
            tapes = sorted(self.folder.glob(f"{symbol}-trades-*.csv"))
            last = last_id_in(tapes[-1]) if tapes else None
            if last is not None:
                found[symbol] = last
        return found
