"""The state database's file: its schema, its version, and refusing what is not ours.

`state.db` in the run directory is SQLite in WAL mode. Its header carries our
application id and the schema version (`PRAGMA application_id`,
`PRAGMA user_version`), so a file is checked read-only before anything is
written to it: a corrupt file, another program's database or one from a newer
naive-mp is refused with a message, and never touched.
"""

import os
import sqlite3
from pathlib import Path

DB_FILE = "state.db"
APPLICATION_ID = 0x6E6D7031  # "nmp1"
SCHEMA_VERSION = 2  # 2: live_orders (`start --live`)
BUSY_TIMEOUT_MS = 30_000  # writers take turns; a commit takes milliseconds

# Who writes what: each process only its own tables (readers read any).
SCHEMA = """
-- `start`: the run this directory holds (one row)
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    run_id INTEGER NOT NULL,
    command TEXT NOT NULL,          -- JSON: what makes a `start` the same run
    started_at REAL NOT NULL
);
-- the operator (`start` seeds it, `settings set` changes it)
CREATE TABLE settings (
    symbol TEXT PRIMARY KEY,
    settings TEXT NOT NULL,         -- JSON of core.settings.Settings
    filters TEXT NOT NULL           -- JSON of core.settings.Filters
);
CREATE TABLE settings_history (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    symbol TEXT NOT NULL,
    key TEXT NOT NULL,
    old TEXT,
    new TEXT NOT NULL,
    source TEXT NOT NULL
);
-- the operator (`trade start|stop|shutdown`)
CREATE TABLE trading (
    symbol TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('start', 'stop', 'shutdown')),
    changed_at REAL NOT NULL
);
-- each leader: its own row and its traders' last acknowledged states
CREATE TABLE leaders (
    symbol TEXT PRIMARY KEY,
    record TEXT NOT NULL            -- JSON of store.records.LeaderRecord
);
CREATE TABLE traders (
    symbol TEXT NOT NULL,
    trader_id INTEGER NOT NULL,
    state TEXT NOT NULL,            -- JSON of core.state.TraderState
    PRIMARY KEY (symbol, trader_id)
);
-- the gateway: its book, every order and fill ever seen, and what it applied
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    trader_id INTEGER NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    status TEXT NOT NULL,
    placed_trade_id INTEGER NOT NULL,
    filled_trade_id INTEGER
);
CREATE INDEX orders_by_symbol ON orders (symbol, order_id);
CREATE TABLE fills (
    order_id INTEGER PRIMARY KEY REFERENCES orders (order_id),
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    fee TEXT NOT NULL,
    trade_id INTEGER NOT NULL
);
CREATE TABLE balances (
    symbol TEXT PRIMARY KEY,
    record TEXT NOT NULL            -- JSON of exchange.paper.Balances
);
CREATE TABLE feeds (
    symbol TEXT PRIMARY KEY,
    record TEXT NOT NULL            -- JSON of store.records.FeedRecord
);
-- the live gateway: each order of ours on Binance, everything known of it (2)
CREATE TABLE live_orders (
    client_order_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    record TEXT NOT NULL            -- JSON of exchange.binance_book.LiveOrder
);
-- the streamer: where the replay stands
CREATE TABLE stream (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL            -- JSON of store.records.StreamPosition
);
"""


class StoreError(Exception):
    """The state database cannot be used; the message says which file and why."""


def db_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / DB_FILE


def check_file(path: Path) -> bool:
    """True when `path` is one of our databases, False when there is none yet (or it is empty).

    Reads only (the header and an integrity check); raises StoreError for
    anything else, naming the file.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not path.is_file() or path.is_symlink():
        raise StoreError(f"{path} is not a regular file: it cannot be naive-mp's state database")
    if info.st_size == 0:
        return False  # created, then the process died before the first commit
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id != APPLICATION_ID:
                raise StoreError(f"{path} is not a naive-mp state database (another program's SQLite file); "
                                 "it was left untouched: use another --run-dir")
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer naive-mp (schema {version}; this one knows "
                                 f"up to {SCHEMA_VERSION}): upgrade naive-mp to resume this run")
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a naive-mp state database, or it is corrupt ({exc}); "
                         "it was left untouched: move it away or use another --run-dir") from None
    if verdict != "ok":
        raise StoreError(f"{path} is corrupt ({verdict}); it was left untouched")
    return True


def connect(path: Path, *, create: bool = False, readonly: bool = False) -> sqlite3.Connection:
    """A connection to our database at `path` (created when `create` and absent).

    Autocommit mode: every write goes through `Store.transaction()`, an
    explicit BEGIN IMMEDIATE, so two writers wait for each other instead of
    failing halfway.
    """
    exists = check_file(path)
    if not exists and not create:
        raise StoreError(f"no run in {path.parent}: {path.name} does not exist")
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)  # created private before SQLite opens it with its default mode
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        return conn
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")  # an acknowledged commit survives a power cut
    if not exists:
        _create(conn)
    else:
        _upgrade(conn)
    return conn


# What each schema version adds to the one before: a run of an older naive-mp resumes.
UPGRADES = {
    2: ["CREATE TABLE IF NOT EXISTS live_orders (client_order_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, "
        "record TEXT NOT NULL)"],
}


def _upgrade(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in UPGRADES[target]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:  # nobody created it meanwhile
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
