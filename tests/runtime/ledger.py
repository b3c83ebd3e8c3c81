"""Checks of a run directory's store that must hold after any crash: read straight from SQLite."""

import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec


class Snapshot:
    """One read transaction: every query sees the same commit (a dying process may still commit)."""

    def __init__(self, run_dir: Path):
        self.conn = sqlite3.connect(f"file:{run_dir / 'state.db'}?mode=ro", uri=True, timeout=30,
                                    isolation_level=None)
        self.conn.execute("BEGIN")

    def __call__(self, sql: str) -> list[tuple]:
        return self.conn.execute(sql).fetchall()

    def close(self) -> None:
        self.conn.close()


def _rows(run_dir, sql: str) -> list[tuple]:
    if isinstance(run_dir, Snapshot):
        return run_dir(sql)
    snapshot = Snapshot(run_dir)
    try:
        return snapshot(sql)
    finally:
        snapshot.close()


def orders(run_dir: Path) -> list[dict]:
    keys = ("order_id", "client_order_id", "symbol", "trader_id", "side", "price", "quantity", "status")
    return [dict(zip(keys, r)) for r in _rows(run_dir, f"SELECT {', '.join(keys)} FROM orders ORDER BY order_id")]


def order_count(run_dir: Path) -> int:
    try:
        return _rows(run_dir, "SELECT count(*) FROM orders")[0][0]
    except sqlite3.Error:
        return 0


def traders(run_dir: Path) -> dict[tuple[str, int], dict]:
    return {(s, t): msgspec.json.decode(state) for s, t, state in _rows(run_dir, "SELECT symbol, trader_id, state FROM traders")}


def invariant_errors(run_dir: Path, chunks: int, fee: Decimal = Decimal("0.001")) -> list[str]:
    """What breaks the promises of a resumable run: each as a sentence (empty: all hold)."""
    snapshot = Snapshot(run_dir)
    try:
        return _errors(snapshot, chunks, fee)
    finally:
        snapshot.close()


def _errors(run_dir: Snapshot, chunks: int, fee: Decimal) -> list[str]:
    errors = []
    found, states = orders(run_dir), traders(run_dir)
    dups = [c for c, n in Counter(o["client_order_id"] for o in found).items() if n > 1]
    if dups:
        errors.append(f"client order ids placed twice: {dups}")
    open_orders = [o for o in found if o["status"] == "NEW"]
    for o in open_orders:
        if (o["symbol"], o["trader_id"]) not in states:
            errors.append(f"open order {o['client_order_id']} has no trader")
    # The order a state names exists (it may have filled since: the trader hears of it next).
    known = {o["client_order_id"] for o in found}
    for (symbol, tid), state in states.items():
        side = {"BUY_PLACED": "B", "SELL_PLACED": "S"}.get(state["phase"])
        attempt = state.get("sell_attempt", 1)
        again = str(attempt) if side == "S" and attempt > 1 else ""
        if side and f"{symbol}-{tid}-{state['cycle']}-{side}{again}" not in known:
            errors.append(f"trader {symbol}#{tid} in {state['phase']} has no order at the exchange")
    for symbol, n in Counter(s for s, _ in states).items():
        if n > chunks:
            errors.append(f"{symbol} has {n} traders, more than chunks={chunks}")
    for symbol, n in Counter(o["symbol"] for o in open_orders if o["side"] == "BUY").items():
        if n > chunks:
            errors.append(f"{symbol} has {n} open BUYs, more than chunks={chunks}")
    return errors + ledger_errors(run_dir, found, fee)


def ledger_errors(run_dir: Path, found: list[dict], fee: Decimal) -> list[str]:
    """The paper wallet equals what the orders say was spent, received and paid in fees."""
    errors = []
    wallets = {s: msgspec.json.decode(r) for s, r in _rows(run_dir, "SELECT symbol, record FROM balances")}
    for symbol in {o["symbol"] for o in found}:
        quote = base = quote_reserved = base_reserved = Decimal(0)
        for o in (o for o in found if o["symbol"] == symbol):
            price, qty = Decimal(o["price"]), Decimal(o["quantity"])
            notional = price * qty
            if o["side"] == "BUY" and o["status"] == "FILLED":
                quote -= notional + notional * fee
                base += qty
            elif o["side"] == "SELL" and o["status"] == "FILLED":
                quote += notional - notional * fee
                base -= qty
            elif o["side"] == "BUY" and o["status"] == "NEW":
                quote -= notional + notional * fee
                quote_reserved += notional + notional * fee
            elif o["side"] == "SELL" and o["status"] == "NEW":
                base -= qty
                base_reserved += qty
        wallet = {k: Decimal(v) for k, v in wallets.get(symbol, {}).items()}
        expected = {"quote": quote, "base": base, "quote_reserved": quote_reserved, "base_reserved": base_reserved}
        for key, value in expected.items():
            if wallet.get(key, Decimal(0)) != value:
                errors.append(f"{symbol} {key}: wallet {wallet.get(key)} != ledger {value}")
    return errors
