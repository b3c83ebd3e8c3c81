"""The state store: everything a run must not lose, in SQLite in the run directory.

One `Store` per process (open it after the fork). Each process writes only
its own tables (see schema.py); what a process acknowledges to another is
committed first, so a `kill -9` anywhere, or a power cut, loses nothing that
was acknowledged. Records are typed (store.records); one that fails
validation raises StoreError naming itself.
"""

import contextlib
import os
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Iterable

import msgspec

from naive_mp.exchange.binance_book import REJECTED, SENDING, LiveOrder
from naive_mp.exchange.paper import Balances, Fill, Order
from naive_mp.core.settings import Filters, Settings, SettingError, with_overrides
from naive_mp.core.state import TraderState
from naive_mp.core.money import fmt
from naive_mp.store.records import (
    FeedRecord,
    LeaderRecord,
    RunCommand,
    RunRecord,
    SettingChange,
    StreamPosition,
    TRADING_STATUSES,
    encode,
    setting_text,
)
from naive_mp.store.schema import DB_FILE, StoreError, connect, db_path

__all__ = ["Book", "Store", "StoreError", "archive", "db_path", "DB_FILE", "RunCommand", "RunRecord",
           "LeaderRecord", "FeedRecord", "StreamPosition", "SettingChange"]

ARCHIVE_DIR = "archive"


class Book(msgspec.Struct, kw_only=True):
    """The gateway's paper book as stored."""

    orders: list[Order] = []
    fills: list[Fill] = []
    balances: dict[str, Balances] = {}
    feeds: dict[str, FeedRecord] = {}


def _decode(text: str | bytes, kind, what: str):
    try:
        return msgspec.json.decode(text, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError, SettingError) as exc:
        raise StoreError(f"{DB_FILE}: {what} is not valid: {exc}") from None


class Store:
    """The run directory's state database, for one process."""

    def __init__(self, run_dir: str | os.PathLike, *, create: bool = False, readonly: bool = False):
        self.path = db_path(run_dir)
        try:
            self.conn = connect(self.path, create=create, readonly=readonly)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self):
        """One atomic, durable write: all of it or nothing."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _one(self, sql: str, *args):
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

    # -- the run (written by `start`) --------------------------------------------------

    def run(self) -> RunRecord | None:
        row = self.conn.execute("SELECT run_id, command, started_at FROM run").fetchone()
        if row is None:
            return None
        command = _decode(row[1], RunCommand, "the run's command")
        return RunRecord(run_id=row[0], command=command, started_at=row[2])

    def begin_run(self, record: RunRecord) -> None:
        """A new run: its command, and each symbol's settings seeded from it, trading."""
        now = time.time()
        with self.transaction() as db:
            db.execute("INSERT INTO run (id, run_id, command, started_at) VALUES (1, ?, ?, ?)",
                       (record.run_id, encode(record.command).decode(), record.started_at))
            for symbol in record.command.symbols:
                settings, filters = record.command.settings[symbol], record.command.filters[symbol]
                db.execute("INSERT INTO settings VALUES (?, ?, ?)",
                           (symbol, encode(settings).decode(), encode(filters).decode()))
                for key, value in msgspec.structs.asdict(settings).items():
                    db.execute("INSERT INTO settings_history (at, symbol, key, old, new, source) "
                               "VALUES (?, ?, ?, NULL, ?, 'start')", (now, symbol, key, setting_text(value)))
                db.execute("INSERT INTO trading VALUES (?, 'start', ?)", (symbol, now))

    def validate(self) -> None:
        """Read and check every record (StoreError naming the first bad one): before anything starts."""
        self.run()
        self.settings()
        self.leaders()
        for symbol in self.trading():
            record, traders = self.leader(symbol)
            if record is not None and any(tid >= record.next_trader_id for tid in traders):
                raise StoreError(f"{DB_FILE}: the leader record of {symbol} is not valid: next_trader_id "
                                 f"{record.next_trader_id} is not above its traders' ids {sorted(traders)}")
        self.book()
        self.position()

    # -- settings and trading control (written by the operator's commands) -------------------

    def settings(self) -> dict[str, tuple[Settings, Filters]]:
        rows = self.conn.execute("SELECT symbol, settings, filters FROM settings ORDER BY symbol").fetchall()
        return {symbol: (_decode(s, Settings, f"the settings of {symbol}"),
                         _decode(f, Filters, f"the filters of {symbol}")) for symbol, s, f in rows}

    def change_settings(self, symbol: str, values: dict[str, str], source: str,
                        refuse=lambda settings: None) -> list[SettingChange]:
        """Apply `values` (key -> text) to `symbol`'s settings, validated; the changes, kept in the history.

        Raises SettingError naming a bad key or value, or what `refuse(new settings)` says is wrong ((key, problem))
        (nothing is written then),
        StoreError for a symbol this run does not trade.
        """
        with self.transaction() as db:
            row = db.execute("SELECT settings FROM settings WHERE symbol = ?", (symbol,)).fetchone()
            if row is None:
                known = ", ".join(self.settings()) or "none"
                raise StoreError(f"{symbol}: this run does not trade it (symbols: {known})")
            old = _decode(row[0], Settings, f"the settings of {symbol}")
            new = with_overrides(old, values)
            why = refuse(new)
            if why:
                raise SettingError(*why)
            now = time.time()
            changes = [SettingChange(at=now, symbol=symbol, key=key, old=setting_text(getattr(old, key)),
                                     new=setting_text(getattr(new, key)), source=source)
                       for key in values if getattr(old, key) != getattr(new, key)]
            db.execute("UPDATE settings SET settings = ? WHERE symbol = ?", (encode(new).decode(), symbol))
            db.executemany("INSERT INTO settings_history (at, symbol, key, old, new, source) VALUES (?, ?, ?, ?, ?, ?)",
                           [(c.at, c.symbol, c.key, c.old, c.new, c.source) for c in changes])
        return changes

    def settings_history(self, symbol: str | None = None) -> list[SettingChange]:
        rows = self.conn.execute(
            "SELECT at, symbol, key, old, new, source FROM settings_history "
            "WHERE ?1 IS NULL OR symbol = ?1 ORDER BY id", (symbol,)).fetchall()
        return [SettingChange(at=r[0], symbol=r[1], key=r[2], old=r[3], new=r[4], source=r[5]) for r in rows]


    def trading(self) -> dict[str, str]:
        """Symbol -> 'start', 'stop' or 'shutdown', as the operator last said."""
        return dict(self.conn.execute("SELECT symbol, status FROM trading ORDER BY symbol").fetchall())

    def set_trading(self, symbol: str, status: str) -> None:
        if status not in TRADING_STATUSES:
            raise ValueError(f"trading status must be one of {TRADING_STATUSES}, got {status!r}")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM settings WHERE symbol = ?", (symbol,)).fetchone() is None:
                known = ", ".join(self.settings()) or "none"
                raise StoreError(f"{symbol}: this run does not trade it (symbols: {known})")
            db.execute("INSERT OR REPLACE INTO trading VALUES (?, ?, ?)", (symbol, status, time.time()))

    # -- a leader's own tables -------------------------------------------------------------

    def leader(self, symbol: str) -> tuple[LeaderRecord | None, dict[int, TraderState]]:
        """The leader's record and its traders' last acknowledged states."""
        text = self._one("SELECT record FROM leaders WHERE symbol = ?", symbol)
        record = _decode(text, LeaderRecord, f"the leader record of {symbol}") if text else None
        traders = {}
        for trader_id, state in self.conn.execute(
                "SELECT trader_id, state FROM traders WHERE symbol = ? ORDER BY trader_id", (symbol,)):
            trader = _decode(state, TraderState, f"trader {symbol}#{trader_id}")
            if trader.trader_id != trader_id or trader.symbol != symbol:
                raise StoreError(f"{DB_FILE}: trader {symbol}#{trader_id} is not valid: it holds "
                                 f"{trader.label}'s state")
            traders[trader_id] = trader
        return record, traders

    def leaders(self) -> dict[str, LeaderRecord]:
        rows = self.conn.execute("SELECT symbol, record FROM leaders").fetchall()
        return {s: _decode(r, LeaderRecord, f"the leader record of {s}") for s, r in rows}

    def save_leader(self, record: LeaderRecord, changed: Iterable[TraderState], removed: Iterable[int]) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO leaders VALUES (?, ?)", (record.symbol, encode(record).decode()))
            db.executemany("INSERT OR REPLACE INTO traders VALUES (?, ?, ?)",
                           [(t.symbol, t.trader_id, encode(t).decode()) for t in changed])
            db.executemany("DELETE FROM traders WHERE symbol = ? AND trader_id = ?",
                           [(record.symbol, tid) for tid in removed])

    # -- the gateway's own tables --------------------------------------------------------

    def book(self) -> Book:
        orders = [self._order(row) for row in self.conn.execute(
            "SELECT order_id, client_order_id, symbol, trader_id, side, price, quantity, status, "
            "placed_trade_id, filled_trade_id FROM orders ORDER BY order_id")]
        fills = [Fill(order_id=r[0], side=r[1], price=Decimal(r[2]), quantity=Decimal(r[3]), fee=Decimal(r[4]),
                      trade_id=r[5])
                 for r in self.conn.execute("SELECT order_id, side, price, quantity, fee, trade_id FROM fills "
                                            "ORDER BY trade_id, order_id")]
        balances = {s: _decode(r, Balances, f"the balances of {s}")
                    for s, r in self.conn.execute("SELECT symbol, record FROM balances")}
        feeds = {s: _decode(r, FeedRecord, f"the feed record of {s}")
                 for s, r in self.conn.execute("SELECT symbol, record FROM feeds")}
        return Book(orders=orders, fills=fills, balances=balances, feeds=feeds)

    @staticmethod
    def _order(row) -> Order:
        try:
            return Order(order_id=row[0], client_order_id=row[1], symbol=row[2], trader_id=row[3], side=row[4],
                         price=Decimal(row[5]), quantity=Decimal(row[6]), status=row[7],
                         placed_trade_id=row[8], filled_trade_id=row[9])
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise StoreError(f"{DB_FILE}: order {row[0]} is not valid: {exc}") from None

    def save_book(self, orders: Iterable[Order], fills: Iterable[Fill], balances: dict[str, Balances],
                  feeds: dict[str, FeedRecord]) -> None:
        """The orders and fills that changed, with the balances and feed positions they go with."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(o.order_id, o.client_order_id, o.symbol, o.trader_id, o.side, fmt(o.price),
                             fmt(o.quantity), o.status, o.placed_trade_id, o.filled_trade_id) for o in orders])
            db.executemany("INSERT OR REPLACE INTO fills VALUES (?, ?, ?, ?, ?, ?)",
                           [(f.order_id, f.side, fmt(f.price), fmt(f.quantity), fmt(f.fee), f.trade_id)
                            for f in fills])
            db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?)",
                           [(s, encode(b).decode()) for s, b in balances.items()])
            db.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?)",
                           [(s, encode(f).decode()) for s, f in feeds.items()])

    def orders(self, symbol: str | None = None) -> list[Order]:
        """Every order the run has seen (of one symbol), by order id."""
        return [self._order(row) for row in self.conn.execute(
            "SELECT order_id, client_order_id, symbol, trader_id, side, price, quantity, status, "
            "placed_trade_id, filled_trade_id FROM orders WHERE ?1 IS NULL OR symbol = ?1 ORDER BY order_id",
            (symbol,))]

    # -- the live gateway's own table -------------------------------------------------

    def live_orders(self) -> list[LiveOrder]:
        """Every order of ours the live gateway asked Binance for, in asking order."""
        orders = [_decode(r, LiveOrder, f"live order {cid}")
                  for cid, r in self.conn.execute("SELECT client_order_id, record FROM live_orders")]
        return sorted(orders, key=lambda o: o.local_id)

    def save_live(self, orders: Iterable[LiveOrder], feeds: dict[str, FeedRecord] | None = None) -> None:
        """Live orders that changed, and (for `orders` and the reports) the orders table's rows of them."""
        orders = list(orders)
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO live_orders VALUES (?, ?, ?)",
                           [(o.client_order_id, o.symbol, encode(o).decode()) for o in orders])
            shown = [o.as_order() for o in orders if o.status not in (SENDING, REJECTED)]
            db.executemany("DELETE FROM orders WHERE order_id = ?",
                           [(o.local_id,) for o in orders if o.status in (SENDING, REJECTED)])
            db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(o.order_id, o.client_order_id, o.symbol, o.trader_id, o.side, fmt(o.price),
                             fmt(o.quantity), o.status, o.placed_trade_id, o.filled_trade_id) for o in shown])
            db.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?)",
                           [(s, encode(f).decode()) for s, f in (feeds or {}).items()])

    # -- the streamer's own table --------------------------------------------------------

    def position(self) -> StreamPosition | None:
        text = self._one("SELECT record FROM stream")
        return _decode(text, StreamPosition, "the stream position") if text else None

    def save_position(self, position: StreamPosition) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO stream VALUES (1, ?)", (encode(position).decode(),))


def archive(run_dir: str | os.PathLike, record: RunRecord | None) -> Path:
    """Move the run's database to RUN_DIR/archive/ (the next `start` begins a new run); its new path."""
    run_dir = Path(run_dir)
    path = db_path(run_dir)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    finally:
        conn.close()
    folder = run_dir / ARCHIVE_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(record.started_at if record else time.time()))
    target = folder / f"run-{stamp}-{(record.run_id if record else time.time_ns()) % 10**9:09d}.db"
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return target
