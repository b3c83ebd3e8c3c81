"""The state store: durable, typed, and it refuses what is not ours without touching it."""

import sqlite3
from decimal import Decimal

import pytest

from naive_mp.exchange.paper import Balances, Fill, Order
from naive_mp.core.settings import Filters, Settings, SettingError
from naive_mp.core.state import TraderState
from naive_mp.store import FeedRecord, LeaderRecord, RunCommand, RunRecord, Store, StoreError, StreamPosition, archive
from naive_mp.store.schema import SCHEMA_VERSION, db_path

FILTERS = Filters(tick_size=Decimal("0.0001"), step_size=Decimal("0.01"))


def command(**changes):
    values = dict(kind="replay", symbols=["XRPUSDT"], tapes=["/t/XRPUSDT-trades-2019-06-01.zip"], lockstep=True,
                  settings={"XRPUSDT": Settings()}, filters={"XRPUSDT": FILTERS})
    values.update(changes)
    return RunCommand(**values)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path, create=True)
    s.begin_run(RunRecord(run_id=1, command=command(), started_at=1.0))
    yield s
    s.close()


def test_a_new_store_is_wal_private_and_versioned(store, tmp_path):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_the_run_and_its_seeded_settings_come_back(store, tmp_path):
    again = Store(tmp_path)
    assert again.run().command == command()
    assert again.settings() == {"XRPUSDT": (Settings(), FILTERS)}
    assert again.trading() == {"XRPUSDT": "start"}
    assert len(again.settings_history("XRPUSDT")) == len(Settings.__struct_fields__)


@pytest.mark.parametrize("changes, differs", [
    ({}, []),
    ({"lockstep": False}, ["lockstep"]),
    ({"tapes": ["/t/other.zip"]}, ["tapes"]),
    ({"settings": {"XRPUSDT": Settings(chunks=3)}}, ["settings"]),
])
def test_a_command_names_what_differs(changes, differs):
    found = command().differences(command(**changes))
    assert [d.split(" ")[0] for d in found] == differs


def test_settings_changes_are_validated_and_kept_with_their_time(store):
    changes = store.change_settings("XRPUSDT", {"chunks": "3", "budget": "100"}, source="test")
    assert [(c.key, c.old, c.new) for c in changes] == [("chunks", "5", "3")]  # budget did not change
    assert store.settings()["XRPUSDT"][0].chunks == 3
    with pytest.raises(SettingError, match="chunks"):
        store.change_settings("XRPUSDT", {"chunks": "0"}, source="test")
    assert store.settings()["XRPUSDT"][0].chunks == 3, "a refused change writes nothing"
    with pytest.raises(StoreError, match="ETHUSDT: this run does not trade it"):
        store.change_settings("ETHUSDT", {"chunks": "3"}, source="test")
    assert store.settings_history("XRPUSDT")[-1].source == "test"


def test_trading_status_is_kept_and_checked(store):
    store.set_trading("XRPUSDT", "shutdown")
    assert store.trading() == {"XRPUSDT": "shutdown"}
    with pytest.raises(ValueError):
        store.set_trading("XRPUSDT", "pause")
    with pytest.raises(StoreError):
        store.set_trading("NOPE", "stop")


def test_leader_states_round_trip_and_removed_traders_go(store, tmp_path):
    t1 = TraderState(symbol="XRPUSDT", trader_id=1, settings=Settings(), filters=FILTERS, phase="BUY_PLACED",
                     last_trade_id=42)
    t2 = TraderState(symbol="XRPUSDT", trader_id=2, settings=Settings(), filters=FILTERS)
    store.save_leader(LeaderRecord(symbol="XRPUSDT", next_trader_id=3, last_seq=9), [t1, t2], [])
    store.save_leader(LeaderRecord(symbol="XRPUSDT", next_trader_id=3, last_seq=10), [], [2])
    record, traders = Store(tmp_path).leader("XRPUSDT")
    assert record.last_seq == 10 and record.next_trader_id == 3
    assert traders == {1: t1}


def test_the_book_round_trips_exactly(store, tmp_path):
    order = Order(order_id=1, client_order_id="XRPUSDT-1-1-B", symbol="XRPUSDT", trader_id=1, side="BUY",
                  price=Decimal("0.00000010"), quantity=Decimal("12.30"), status="FILLED",
                  placed_trade_id=5, filled_trade_id=7)
    fill = Fill(order_id=1, side="BUY", price=order.price, quantity=order.quantity,
                fee=Decimal("0.00000000123"), trade_id=7)
    wallet = Balances(quote=Decimal("-1.23"), base=Decimal("12.3"))
    feed = FeedRecord(last_seq=7, last_trade_id=7, last_price=Decimal("0.5"), lost=2)
    store.save_book([order], [fill], {"XRPUSDT": wallet}, {"XRPUSDT": feed})
    book = Store(tmp_path).book()
    assert book.orders == [order] and book.fills == [fill]
    assert book.balances == {"XRPUSDT": wallet} and book.feeds == {"XRPUSDT": feed}
    assert book.feeds["XRPUSDT"].events == 5
    assert Store(tmp_path, readonly=True).orders("XRPUSDT") == [order]


def test_stream_position_round_trips(store, tmp_path):
    store.save_position(StreamPosition(tape=1, offset=99, seq={"XRPUSDT": 1000}))
    assert Store(tmp_path).position() == StreamPosition(tape=1, offset=99, seq={"XRPUSDT": 1000})


def test_a_record_that_fails_validation_names_itself(store, tmp_path):
    store.conn.execute("INSERT INTO traders VALUES ('XRPUSDT', 3, '{\"symbol\": 5}')")
    with pytest.raises(StoreError, match=r"trader XRPUSDT#3 is not valid"):
        Store(tmp_path).leader("XRPUSDT")
    store.conn.execute("UPDATE settings SET settings = '{\"chunks\": 0}'")
    with pytest.raises(StoreError, match="the settings of XRPUSDT is not valid"):
        Store(tmp_path).settings()


@pytest.mark.parametrize("make, why", [
    (lambda p: p.write_bytes(b"this is not a database at all, just text\n" * 100), "not a naive-mp state database"),
    (lambda p: _foreign(p), "another program's SQLite file"),
    (lambda p: _newer(p), "newer naive-mp"),
])
def test_a_file_that_is_not_ours_is_refused_and_left_untouched(tmp_path, make, why):
    path = db_path(tmp_path)
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=why):
        Store(tmp_path, create=True)
    assert path.read_bytes() == before


def test_a_corrupt_database_is_refused_and_left_untouched(store, tmp_path):
    store.save_position(StreamPosition(tape=0, offset=1))
    store.close()
    path = db_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # a page of garbage
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        Store(tmp_path)
    assert path.read_bytes() == bytes(data)


def _foreign(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()


def _newer(path):
    Store(path.parent, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


def test_archive_moves_the_run_away(store, tmp_path):
    run = store.run()
    store.close()
    target = archive(tmp_path, run)
    assert not db_path(tmp_path).exists() and target.parent == tmp_path / "archive"
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT run_id FROM run").fetchone()[0] == 1


@pytest.mark.parametrize("table, row, named", [
    ("leaders", ("XRPUSDT", '{"symbol": "XRPUSDT", "next_trader_id": -5}'), "the leader record of XRPUSDT"),
    ("leaders", ("XRPUSDT", '[]'), "the leader record of XRPUSDT"),
    ("traders", ("XRPUSDT", 7, "garbage"), "trader XRPUSDT#7"),
    ("stream", (1, '{"tape": "x"}'), "the stream position"),
])
def test_validate_names_the_first_bad_record(store, tmp_path, table, row, named):
    store.conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    with pytest.raises(StoreError, match=named):
        Store(tmp_path).validate()


def test_validate_refuses_a_trader_id_the_leader_would_give_again(store, tmp_path):
    trader = TraderState(symbol="XRPUSDT", trader_id=4, settings=Settings(), filters=FILTERS)
    store.save_leader(LeaderRecord(symbol="XRPUSDT", next_trader_id=2), [trader], [])
    with pytest.raises(StoreError, match="next_trader_id 2 is not above"):
        Store(tmp_path).validate()


def test_a_run_of_schema_1_is_upgraded_in_place_and_keeps_its_rows(tmp_path):
    store = Store(tmp_path, create=True)
    store.conn.execute("DROP TABLE live_orders")
    store.conn.execute("PRAGMA user_version = 1")
    store.conn.close()
    upgraded = Store(tmp_path)
    assert upgraded.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert upgraded.live_orders() == []


def test_live_orders_round_trip_and_show_in_the_orders_table(tmp_path):
    from decimal import Decimal as D

    from naive_mp.core.messages import PlaceOrder
    from naive_mp.exchange import binance_book as book

    store = Store(tmp_path, create=True)
    place = PlaceOrder(client_order_id="XRPUSDT-1-1-B", symbol="XRPUSDT", trader_id=1, side="BUY",
                       price=D("0.4307"), quantity=D("23.2"))
    order = book.new_order(place, "XRP", local_id=1, placed_trade_id=10)
    store.save_live([order])
    assert store.live_orders() == [order] and store.orders() == []  # still being sent: not an order yet
    book.apply_answer(order, {"orderId": 77, "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0"})
    store.save_live([order])
    (row,) = store.orders()
    assert (row.order_id, row.status, row.price, row.quantity) == (1, "NEW", D("0.4307"), D("23.2"))
    assert store.live_orders()[0].exchange_id == 77
