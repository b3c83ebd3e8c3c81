"""`naive-mp backtest` on the real tapes, checked against independently derived numbers."""

import csv
import io
import json
import zipfile
from decimal import ROUND_DOWN, Decimal as D

import pytest
from click.testing import CliRunner

from naive_mp.cli import main

XRP_FLAGS = ["--tick-size", "0.00001", "--step-size", "0.1", "--min-qty", "0.1", "--min-notional", "10"]


def slow_tape(path):
    """trade id -> Decimal price, read with csv and Decimal only."""
    if str(path).endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            text = z.read(z.namelist()[0]).decode()
    else:
        text = open(path).read()
    return {int(row[0]): D(row[1]) for row in csv.reader(io.StringIO(text)) if row and row[0].isdigit()}


def backtest(*args):
    result = CliRunner().invoke(main, ["backtest", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def read_orders(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def xrp_run(tmp_path_factory, tape_path):
    path = tape_path("XRPUSDT-trades-2019-05-26.zip")
    out = tmp_path_factory.mktemp("xrp") / "orders.csv"
    result = backtest(path, *XRP_FLAGS, "--orders-out", out, "--json")
    return path, json.loads(result.stdout), read_orders(out)


def test_json_summary_has_the_contract_fields(xrp_run):
    _, summary, orders = xrp_run
    for key in ("symbol", "events", "orders_placed", "orders_filled", "orders_open", "cycles",
                "max_traders", "realized_pnl", "fees", "position_qty", "position_cost",
                "last_price", "elapsed_s"):
        assert key in summary
    assert summary["symbol"] == "XRPUSDT" and summary["events"] == 43_789
    assert summary["orders_placed"] == len(orders) > 0
    assert 1 <= summary["max_traders"] <= 5


def test_orders_file_agrees_with_the_tape(xrp_run):
    path, summary, orders = xrp_run
    prices = slow_tape(path)
    tick, fee = D("0.00001"), D("0.001")
    assert [int(o["order_id"]) for o in orders] == list(range(1, len(orders) + 1))
    for o in orders:
        price, placed_at = D(o["price"]), prices[int(o["placed_trade_id"])]
        assert "E" not in o["price"] + o["quantity"]
        if o["side"] == "BUY":  # independently: floor(p - p * 0.0001) on the tick grid
            expected = ((placed_at - placed_at * D("0.0001")) / tick).to_integral_value(ROUND_DOWN) * tick
            assert price == expected
        if o["status"] == "FILLED":
            filled_at = prices[int(o["filled_trade_id"])]
            assert int(o["filled_trade_id"]) > int(o["placed_trade_id"])
            assert filled_at <= price if o["side"] == "BUY" else filled_at >= price
        else:
            assert o["status"] == "NEW" and o["filled_trade_id"] == ""
    sells = [o for o in orders if o["side"] == "SELL" and o["status"] == "FILLED"]
    assert summary["cycles"] == len(sells)
    buys = {o["client_order_id"][:-2]: o for o in orders if o["side"] == "BUY"}
    pnl = D(0)
    for s in sells:
        b = buys[s["client_order_id"][:-2]]
        q = D(s["quantity"])
        pnl += D(s["price"]) * q - D(b["price"]) * q - fee * D(b["price"]) * q - fee * D(s["price"]) * q
    assert D(summary["realized_pnl"]) == pnl
    assert D(summary["fees"]) == sum(fee * D(o["price"]) * D(o["quantity"]) for o in orders if o["status"] == "FILLED")


@pytest.mark.parametrize("tape, flags", [
    ("XRPUSDT-trades-2019-06-01.zip", XRP_FLAGS),
    ("ETHUSDT-trades-2019-06-07.zip", ["--tick-size", "0.01", "--step-size", "0.00001", "--min-notional", "10"]),
    ("BTCUSDT-trades-2024-08-08-excerpt.csv", ["--tick-size", "0.01", "--step-size", "0.00001", "--min-notional", "5"]),
])
def test_positive_profit_target_sells_above_buy_and_fees(tape, flags, tape_path, tmp_path):
    out = tmp_path / "orders.csv"
    backtest(tape_path(tape), *flags, "--set", "profit_target=0.002", "--orders-out", out)
    orders = read_orders(out)
    buys = {o["client_order_id"][:-2]: o for o in orders if o["side"] == "BUY"}
    sells = [o for o in orders if o["side"] == "SELL"]
    assert sells, "a day of trading should complete at least one cycle"
    for s in sells:
        assert D(s["price"]) >= D(buys[s["client_order_id"][:-2]]["price"]) * D("1.001") * D("1.001")


def test_readable_summary_by_default(tape_path):
    result = backtest(tape_path("ETHUSDT-trades-2024-08-08-excerpt.csv"), "--tick-size", "0.01", "--step-size", "0.0001")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["SYMBOL", "PERIOD", "(UTC)"] and "CYCLES" in lines[0]
    row = lines[1]
    assert row.startswith("ETHUSDT  2024-08-08") and "14,515" in row
    assert row.count(" USDT") == 4, "realized, unrealized, drawdown and fees each say their currency"


def test_two_symbols_with_the_same_quote_get_a_total_row_and_keep_their_own_assets(tape_path):
    result = backtest(tape_path("ETHUSDT-trades-2024-08-08-excerpt.csv"), tape_path("BTCUSDT-trades-2024-08-08-excerpt.csv"),
                      "--tick-size", "0.01", "--step-size", "0.00001")
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["ETHUSDT", "BTCUSDT", "total"]
    held = [line for line in lines if " held, bought for " in line]
    assert any(" ETH held" in line for line in held) and any(" BTC held" in line for line in held)


def test_a_cycle_whose_sell_was_placed_again_counts_once_in_the_summary():
    from decimal import Decimal as D

    from naive_mp.backtest.report import summarize
    from naive_mp.exchange.paper import Order

    def order(oid, cid, side, price, status):
        return Order(order_id=oid, client_order_id=cid, symbol="X", trader_id=1, side=side, price=D(price),
                     quantity=D("10"), status=status)
    orders = [order(1, "X-1-1-B", "BUY", "1", "FILLED"), order(2, "X-1-1-S", "SELL", "2", "CANCELED"),
              order(3, "X-1-1-S2", "SELL", "2", "FILLED")]
    s = summarize("X", orders, D("0"), 3, 1, D("2"))
    assert (s.cycles, s.realized_pnl, s.position_qty) == (1, D("10"), D("0"))


def test_quiet_backtest_prints_only_the_result(tmp_path):
    import subprocess
    import sys
    tape = tmp_path / "XRPUSDT-trades-2019-06-01.csv"
    tape.write_text("".join(f"{i},0.4{i % 7},1.0,0.4,{1559347200000 + i},True,True\n" for i in range(1, 200)))
    loud = subprocess.run([sys.executable, "-m", "naive_mp", "backtest", str(tape), "--tick-size", "0.01",
                           "--step-size", "0.1", "--json"], capture_output=True, text=True)
    quiet = subprocess.run([sys.executable, "-m", "naive_mp", "backtest", str(tape), "--tick-size", "0.01",
                            "--step-size", "0.1", "--json", "-q"], capture_output=True, text=True)
    assert "no min_qty given" in loud.stderr and quiet.stderr == ""
    assert quiet.stdout.split('"elapsed_s"')[0] == loud.stdout.split('"elapsed_s"')[0]


def test_several_tapes_show_a_progress_bar_on_a_terminal_only(tmp_path):
    import os
    import pty
    import subprocess
    import sys
    tapes = []
    for day in (1, 2):
        tape = tmp_path / f"XRPUSDT-trades-2019-06-0{day}.csv"
        tape.write_text("".join(f"{day * 1000 + i},0.4{i % 7},1.0,0.4,{1559347200000 + i},True,True\n"
                                for i in range(1, 200)))
        tapes.append(str(tape))
    args = [sys.executable, "-m", "naive_mp", "backtest", *tapes, "--tick-size", "0.01", "--step-size", "0.1"]
    leader, follower = pty.openpty()
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=60)
    os.close(follower)
    seen = b""
    try:
        while chunk := os.read(leader, 65536):
            seen += chunk
    except OSError:  # the terminal's other end is closed: all read
        pass
    os.close(leader)
    assert done.returncode == 0 and b"reading tapes" in seen and b"2/2" in seen and b"tapes/s" in seen
    piped = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert "reading tapes" not in piped.stderr
