"""The store's commands on a run directory with nothing running: orders, settings, trade, reload."""

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from naive_mp.cli import main
from naive_mp.exchange.paper import Order
from naive_mp.core.settings import Filters, Settings
from naive_mp.store import FeedRecord, RunCommand, RunRecord, Store

FILTERS = Filters(tick_size=Decimal("0.0001"), step_size=Decimal("0.01"))


@pytest.fixture
def run_dir(tmp_path):
    store = Store(tmp_path, create=True)
    command = RunCommand(kind="replay", symbols=["XRPUSDT"], tapes=["/t.csv"], settings={"XRPUSDT": Settings()},
                         filters={"XRPUSDT": FILTERS})
    store.begin_run(RunRecord(run_id=1, command=command, started_at=1.0))
    order = Order(order_id=1, client_order_id="XRPUSDT-1-1-B", symbol="XRPUSDT", trader_id=1, side="BUY",
                  price=Decimal("0.00001"), quantity=Decimal("100"), placed_trade_id=3)
    store.save_book([order], [], {}, {"XRPUSDT": FeedRecord(last_seq=3, last_trade_id=3)})
    store.close()
    return tmp_path


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_orders_lists_the_run_with_the_orders_out_columns(run_dir):
    out = cli("orders", "--run-dir", run_dir)
    assert out.exit_code == 0
    assert out.output.splitlines() == [
        "order_id,client_order_id,symbol,trader_id,side,price,quantity,status,placed_trade_id,filled_trade_id",
        "1,XRPUSDT-1-1-B,XRPUSDT,1,BUY,0.00001,100,NEW,3,"]
    rows = json.loads(cli("orders", "xrpusdt", "--json", "--run-dir", run_dir).output)
    assert rows[0]["price"] == "0.00001" and rows[0]["filled_trade_id"] is None
    assert json.loads(cli("orders", "ETHUSDT", "--json", "--run-dir", run_dir).output) == []


def test_settings_work_with_nothing_running_and_refuse_bad_values(run_dir):
    assert cli("settings", "set", "XRPUSDT", "chunks=0", "--run-dir", run_dir).exit_code == 2
    bad_key = cli("settings", "set", "XRPUSDT", "speed=3", "--run-dir", run_dir)
    assert bad_key.exit_code == 2 and "speed" in bad_key.output
    assert cli("settings", "set", "XRPUSDT", "chunks=2", "--run-dir", run_dir).exit_code == 0
    shown = json.loads(cli("settings", "show", "--json", "--run-dir", run_dir).output)
    assert shown["XRPUSDT"]["settings"]["chunks"] == "2" and shown["XRPUSDT"]["filters"]["tick_size"] == "0.0001"
    reload = cli("reload", "--run-dir", run_dir)
    assert reload.exit_code == 1 and "no naive-mp supervisor is running" in reload.output


def test_trade_control_is_kept_and_names_unknown_symbols(run_dir):
    out = cli("trade", "stop", "xrpusdt", "--run-dir", run_dir)
    assert out.exit_code == 0 and "from the next `naive-mp start`" in out.output
    assert Store(run_dir).trading() == {"XRPUSDT": "stop"}
    unknown = cli("trade", "start", "ETHUSDT", "--run-dir", run_dir)
    assert unknown.exit_code == 1 and "ETHUSDT: this run does not trade it" in unknown.output
    assert cli("trade", "pause", "XRPUSDT", "--run-dir", run_dir).exit_code == 2


def test_commands_on_a_directory_without_a_run_say_so(tmp_path):
    for args in (["orders"], ["settings", "show"], ["trade", "stop", "X"]):
        out = cli(*args, "--run-dir", tmp_path)
        assert out.exit_code == 1 and "no run in" in out.output


def test_quiet_commands_say_nothing_unless_they_fail(run_dir):
    assert cli("trade", "stop", "XRPUSDT", "-q", "--run-dir", run_dir).output == ""
    assert cli("settings", "set", "XRPUSDT", "chunks=3", "-q", "--run-dir", run_dir).output == ""
    failed = cli("trade", "stop", "NOPE", "-q", "--run-dir", run_dir)
    assert failed.exit_code == 1 and "NOPE" in failed.output


def test_orders_quiet_prints_the_rows_alone(run_dir):
    assert cli("orders", "-q", "--run-dir", run_dir).output == "1,XRPUSDT-1-1-B,XRPUSDT,1,BUY,0.00001,100,NEW,3,\n"


def test_a_losing_profit_target_on_a_run_with_real_orders_takes_allow_loss(tmp_path):
    store = Store(tmp_path, create=True)
    command = RunCommand(kind="live", symbols=["XRPUSDT"], settings={"XRPUSDT": Settings(profit_target=Decimal("0.002"))},
                         filters={"XRPUSDT": FILTERS}, orders="live")
    store.begin_run(RunRecord(run_id=1, command=command, started_at=1.0))
    store.close()
    refused = cli("settings", "set", "XRPUSDT", "profit_target=-0.001", "--run-dir", tmp_path)
    assert refused.exit_code == 2 and "--allow-loss" in refused.output
    assert Store(tmp_path).settings()["XRPUSDT"][0].profit_target == Decimal("0.002"), "nothing written"
    meant = cli("settings", "set", "XRPUSDT", "profit_target=-0.001", "--allow-loss", "--run-dir", tmp_path)
    assert meant.exit_code == 0 and Store(tmp_path).settings()["XRPUSDT"][0].profit_target == Decimal("-0.001")


def test_a_paper_run_takes_any_valid_profit_target(run_dir):
    assert cli("settings", "set", "XRPUSDT", "profit_target=-0.001", "--run-dir", run_dir).exit_code == 0
