"""Real orders (`start --live`): the real gateway process, python-binance, and a fake Binance on 127.0.0.1.

Every test checks the two promises on the fake's own book: no order placed
twice (each client order id booked once), and every order followed (each
filled BUY has its SELL, for what the BUY received).
"""

import collections
import glob
import json
import os
import signal
import time
from decimal import ROUND_DOWN, Decimal

import pytest

from fakebinance import TESTUSDT_INFO as EXCHANGE_INFO, FakeBinance, FakeTrade
from test_metrics import free_port, scrape
from tree import Tree, cmdline, naive_mp

LEVELS = ["1.0000", "0.9970", "0.9960", "1.0020"]  # BUYs fill, rebuys fire, SELLs fill, traders are replaced
FIRST_ID = 7_000_000
KEY, SECRET = "test-api-key-4f1c", "S3CRET-never-shown-9a7b2e"
STEP = Decimal("0.01")
# Binance's patience, scaled down: asked 3 s for an order whose reply was lost, checks every 2 s.
KNOBS = {"spec": {"stream_silence_s": 2.0, "live_timing": {
    "resolve_s": 3.0, "poll_s": 0.2, "reconcile_s": 2.0, "insufficient_retry_s": 1.0, "key_retry_s": 1.0,
    "request_timeout_s": 3.0}}}


def tape(n: int, qty: str = "8.00") -> list[FakeTrade]:
    """Levels of 10 trades; 8 a trade: a 20-unit order fills over 3 trades (partial fills)."""
    return [FakeTrade(FIRST_ID + i, LEVELS[(i // 10) % 4], qty, 1_723_161_255_000 + 20 * i) for i in range(n)]


@pytest.fixture
def fake(monkeypatch):
    with FakeBinance({"TESTUSDT": tape(800)}, exchange_info=EXCHANGE_INFO, api_key=KEY, api_secret=SECRET,
                     balances={"USDT": "1000", "TEST": "0"}, partial=True) as server:
        monkeypatch.setenv("NAIVE_MP_BINANCE_API_URL", server.api_url)
        monkeypatch.setenv("NAIVE_MP_BINANCE_STREAM_URL", server.stream_url)
        monkeypatch.setenv("NAIVE_MP_BINANCE_WS_API_URL", server.ws_api_url)
        monkeypatch.setenv("BINANCE_API_KEY", KEY)
        monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
        yield server


def live_tree(tmp_path, *more, knobs=KNOBS) -> Tree:
    return Tree(tmp_path / "run", "TESTUSDT", "--live", "--allow-loss", *more, knobs=knobs)


def up(t: Tree, fake: FakeBinance, traders: int = 1) -> None:
    t.wait_for(lambda: len(t.processes("trader")) >= traders and fake.open_connections() >= 1
               and fake.subscriptions() >= 1, timeout=40)


def no_order_twice(fake: FakeBinance) -> list[str]:
    counts = collections.Counter(o["clientOrderId"] for o in fake.orders())
    return [cid for cid, n in counts.items() if n > 1]


def unfollowed(fake: FakeBinance) -> list[str]:
    """Filled BUYs without their SELL, or with a SELL for other than what the BUY received."""
    by_cid = {o["clientOrderId"]: o for o in fake.orders()}
    trades = fake.my_trades("TESTUSDT")
    problems = []
    for cid, order in by_cid.items():
        if order["side"] != "BUY" or Decimal(order["executedQty"]) == 0 or order["status"] not in ("FILLED",):
            continue
        fee = sum(Decimal(t["commission"]) for t in trades if t["orderId"] == order["orderId"]
                  and t["commissionAsset"] == "TEST")
        received = (Decimal(order["executedQty"]) - fee).quantize(STEP, rounding=ROUND_DOWN)
        sells = [o for c, o in by_cid.items() if c.startswith(cid[:-1] + "S")]
        if not sells:
            problems.append(f"{cid} filled, no SELL")
        elif Decimal(sells[0]["origQty"]) != received:
            problems.append(f"{cid} received {received}, its SELL is for {sells[0]['origQty']}")
    return problems


def stop(t: Tree) -> None:
    naive_mp("stop", "--run-dir", t.run_dir, check=True)
    code, _ = t.wait(timeout=60)
    assert code == 0, t.log()[-3000:]


def store_orders(run_dir) -> dict:
    out = naive_mp("orders", "--json", "--run-dir", run_dir, check=True)
    return {o["client_order_id"]: o for o in json.loads(out.stdout)}


def test_a_live_session_places_follows_partial_fills_and_sells_what_was_received(fake, tmp_path):
    port = free_port()
    t = live_tree(tmp_path, "--metrics-addr", port)
    try:
        up(t, fake)
        fake.play(interval_s=0.01)
        fake.wait_played(timeout=90)
        t.wait_for(lambda: sum(o["status"] == "FILLED" and o["side"] == "SELL" for o in fake.orders()) >= 3,
                   timeout=30)
        time.sleep(1.5)  # the last reports arrive, the gateway beats
        assert "user stream up" in t.processes("gateway")[0]["state"]
        metrics = scrape(port)
        stop(t)
    finally:
        t.kill_all()
    assert no_order_twice(fake) == [] and unfollowed(fake) == []
    partial = [o for o in fake.orders() if o["status"] == "FILLED" and Decimal(o["origQty"]) > 8]
    assert partial, "orders larger than a trade filled over several trades"
    ours = store_orders(t.run_dir)
    for order in fake.orders():  # the run's record agrees with the exchange's book
        assert ours[order["clientOrderId"]]["status"] == order["status"], order
    assert metrics[("naive_mp_user_stream_up", ())] == 1 and metrics[("naive_mp_binance_ban_seconds", ())] == 0
    open_now = sum(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in fake.orders())
    assert metrics[("naive_mp_orders_open", (("symbol", "TESTUSDT"),))] == open_now
    assert "Traceback" not in t.log()


def test_a_placed_order_whose_reply_is_lost_exists_once_and_is_followed(fake, tmp_path):
    fake.lose_reply(1, mode="503", invisible_s=1.0)  # booked, answered 503, and not visible for 1 s
    fake.lose_reply(1, mode="close")  # booked, the connection closed with no answer
    t = live_tree(tmp_path)
    try:
        up(t, fake)
        fake.play(interval_s=0.01)
        fake.wait_played(timeout=90)
        t.wait_for(lambda: sum(o["side"] == "SELL" and o["status"] == "FILLED" for o in fake.orders()) >= 2,
                   timeout=40)
        stop(t)
    finally:
        t.kill_all()
    assert no_order_twice(fake) == [] and unfollowed(fake) == []
    log = t.log()
    assert "asking Binance for it by client id" in log and "found after an unknown outcome" in log


def test_a_dropped_silent_or_old_user_stream_is_rebuilt_and_no_fill_is_missed(fake, tmp_path):
    knobs = {"spec": {**KNOBS["spec"], "stream_max_age_s": 6.0}}  # Binance's 24 h cut, scaled down
    t = live_tree(tmp_path, knobs=knobs)
    try:
        up(t, fake)
        fake.play(interval_s=0.02)
        time.sleep(2.0)
        fake.drop_user_streams()
        time.sleep(2.0)
        fake.silence_user_streams()  # open, no pong, nothing sent: only our own watch notices
        fake.wait_played(timeout=90)
        t.wait_for(lambda: fake.subscribes_total >= 3, timeout=30)
        t.wait_for(lambda: unfollowed(fake) == [], timeout=30)
        stop(t)
    finally:
        t.kill_all()
    assert no_order_twice(fake) == [] and unfollowed(fake) == []
    log = t.log()
    assert "user data stream down" in log and "the user data stream came back" in log
    assert "no answer to a ping" in log, "the silence was noticed by our own watch"
    assert "rebuilt before Binance's connection age limit" in log


def test_refusals_each_get_their_documented_behaviour(fake, tmp_path):
    fake.reject_next(-2010, "Account has insufficient balance for requested action.", n=4)
    fake.reject_next(-2015, "Invalid API-key, IP, or permissions for action.", status=401)  # revoked, then not
    t = live_tree(tmp_path)
    try:
        up(t, fake)
        assert "clock is" not in t.log()
        fake.skew_clock(-20_000)  # Binance's clock 20 s behind ours now: -1021 until we resync
        fake.print_trades("TESTUSDT", 1)
        t.wait_for(lambda: any("waiting: -2010 Account has insufficient balance" in p["state"]
                               for p in t.processes("trader")), timeout=30)  # said in status
        t.wait_for(lambda: any(o["side"] == "BUY" for o in fake.orders()), timeout=30)
        log = t.log()
        assert "insufficient balance" in log and "tries again" in log, "waits, then places the same order again"
        fake.rate_limit(2, retry_after=1)
        fake.ban(5.0)
        fake.print_trades("TESTUSDT", 30)
        t.wait_for(lambda: "BINANCE BANNED THIS IP" in t.log(), timeout=30)
        t.wait_for(lambda: "BANNED by Binance" in t.processes("gateway")[0]["state"], timeout=10)
        fake.reject_next(-1013, "Filter failure: PRICE_FILTER", n=50)
        fake.play(interval_s=0.01)
        t.wait_for(lambda: any(p["state"] == "FAILED" for p in t.processes("trader"))
                   or "our order breaks a filter" in t.log(), timeout=40)
        stop(t)
    finally:
        t.kill_all()
    log = t.log()
    assert "our order breaks a filter, a bug of ours; that trader stops" in log
    assert "clock is" in log, "-1021 resynced the clock"
    assert "429 from Binance" in log and "every request waits 1 s" in log
    assert "BINANCE REFUSED OUR API KEY (-2015" in log and "orders are tried again every 1 s" in log
    assert no_order_twice(fake) == []


def test_an_order_of_ours_the_run_does_not_know_is_reported_and_adopted_never_duplicated(fake, tmp_path):
    from binance import Client
    client = Client(KEY, SECRET, ping=False)
    client.API_URL = fake.api_url + "/api"
    # As if an earlier gateway had placed trader 1's BUY and died before writing it down.
    client.create_order(symbol="TESTUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="20.00",
                        price="0.9999", newClientOrderId="TESTUSDT-1-1-B")
    t = live_tree(tmp_path)
    try:
        up(t, fake)
        t.wait_for(lambda: "which this run has no record of" in t.log(), timeout=30)
        fake.play(interval_s=0.01)
        fake.wait_played(timeout=90)
        t.wait_for(lambda: unfollowed(fake) == [] and any(o["side"] == "SELL" for o in fake.orders()), timeout=30)
        stop(t)
    finally:
        t.kill_all()
    assert no_order_twice(fake) == [] and "Duplicate order sent." in t.log()


def test_kill_9_of_a_trader_the_gateway_and_the_whole_tree_places_nothing_twice(fake, tmp_path):
    t = live_tree(tmp_path)
    try:
        up(t, fake)
        fake.play(interval_s=0.02)
        time.sleep(2)
        trader = t.processes("trader")[0]
        os.kill(trader["pid"], signal.SIGKILL)
        t.wait_for(lambda: any(p["trader_id"] == trader["trader_id"] and p["pid"] != trader["pid"]
                               for p in t.processes("trader")), timeout=30)
        time.sleep(1)
        gateway = t.processes("gateway")[0]["pid"]
        os.kill(gateway, signal.SIGKILL)
        t.wait_for(lambda: (g := t.processes("gateway")) and g[0]["pid"] != gateway
                   and "user stream up" in g[0]["state"], timeout=30)
        time.sleep(2)
        os.killpg(t.proc.pid, signal.SIGKILL)
        t.proc.wait(10)
    finally:
        t.kill_all()
    t2 = live_tree(tmp_path)  # the same command resumes the run
    try:
        up(t2, fake)
        fake.wait_played(timeout=90)
        t2.wait_for(lambda: unfollowed(fake) == [], timeout=40)
        stop(t2)
    finally:
        t2.kill_all()
    assert no_order_twice(fake) == [] and unfollowed(fake) == []
    assert "live book restored" in t2.log()


def test_an_order_canceled_by_hand_while_running_and_while_stopped_is_noticed_and_recovered(fake, tmp_path):
    t = live_tree(tmp_path)
    try:
        up(t, fake)
        fake.print_trades("TESTUSDT", 1)  # 1.0000: trader 1 places its BUY at 0.9999
        t.wait_for(lambda: fake.open_orders("TESTUSDT"), timeout=30)
        fake.cancel_by_hand("TESTUSDT-1-1-B")
        t.wait_for(lambda: "TESTUSDT-1-1-B canceled on Binance" in t.log(), timeout=30)
        fake.print_trades("TESTUSDT", 1)
        t.wait_for(lambda: fake.order("TESTUSDT-1-2-B"), timeout=30)  # a new cycle, a new client id
        stop(t)
    finally:
        t.kill_all()
    fake.cancel_by_hand("TESTUSDT-1-2-B")  # while nothing runs
    patient = {"spec": {**KNOBS["spec"], "live_timing": {**KNOBS["spec"]["live_timing"], "reconcile_s": 600}}}
    t2 = live_tree(tmp_path, knobs=patient)  # no periodic check: the one at start must find it
    try:
        up(t2, fake)
        t2.wait_for(lambda: "TESTUSDT-1-2-B canceled on Binance" in t2.log(), timeout=30)
        fake.print_trades("TESTUSDT", 1)
        t2.wait_for(lambda: fake.order("TESTUSDT-1-3-B"), timeout=30)
        stop(t2)
    finally:
        t2.kill_all()
    assert no_order_twice(fake) == []


def test_the_api_secret_shows_nowhere_but_in_the_gateway(fake, tmp_path):
    t = live_tree(tmp_path, "-v")  # DEBUG lines too
    try:
        up(t, fake, traders=1)
        fake.print_trades("TESTUSDT", 1)
        t.wait_for(lambda: fake.orders(), timeout=30)
        pids = {p["role"]: p["pid"] for p in t.processes_all()}
        everyone = [p["pid"] for p in t.processes_all()] + [t.proc.pid]
        status = naive_mp("status", "--run-dir", t.run_dir, check=True).stdout
        status_json = naive_mp("status", "--json", "--run-dir", t.run_dir, check=True).stdout
        environs = {pid: open(f"/proc/{pid}/environ", "rb").read() for pid in set(everyone)}
        lines = [cmdline(pid) for pid in set(everyone)]
        stop(t)
    finally:
        t.kill_all()
    secret = SECRET.encode()
    assert all(secret not in env for pid, env in environs.items() if pid != pids["gateway"]), \
        "only the gateway may have it (and it does not, in its environment, either)"
    assert not any(SECRET in line for line in lines), "no command line or process title"
    assert SECRET not in status and SECRET not in status_json
    for path in glob.glob(str(t.run_dir / "**"), recursive=True):
        if os.path.isfile(path):
            assert secret not in open(path, "rb").read(), f"{path} holds the secret"
    stderr = (tmp_path / "run.stderr").read_text()
    assert SECRET not in stderr and KEY not in stderr and KEY not in t.log(), "nor the key, even at DEBUG"
    assert "DEBUG" in t.log()


def test_live_refuses_a_losing_profit_target_and_a_budget_the_account_cannot_cover(fake, tmp_path):
    out = naive_mp("start", "TESTUSDT", "--live", "--run-dir", tmp_path / "a")
    assert out.returncode == 2 and "--allow-loss" in out.stderr and "Traceback" not in out.stderr
    out = naive_mp("start", "TESTUSDT", "--live", "--set", "profit_target=0.001", "--set", "budget=5000",
                   "--run-dir", tmp_path / "b", timeout=60)
    assert out.returncode == 1 and "more than the account's free USDT (1000)" in out.stderr
    assert not fake.orders()


def test_keys_from_a_world_readable_file_are_refused_saying_why(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("BINANCE_API_KEY")
    monkeypatch.delenv("BINANCE_API_SECRET")
    keys = tmp_path / "keys.toml"
    keys.write_text(f'api_key = "{KEY}"\napi_secret = "{SECRET}"\n')
    keys.chmod(0o644)
    out = naive_mp("start", "TESTUSDT", "--live", "--allow-loss", "--secrets", keys, "--run-dir", tmp_path / "r")
    assert out.returncode == 1 and "chmod 600" in out.stderr and SECRET not in out.stderr


def test_wrong_api_keys_stop_a_new_run_and_a_resumed_one_with_binance_s_answer(fake, tmp_path, monkeypatch):
    t = live_tree(tmp_path)
    try:
        up(t, fake)
        fake.print_trades("TESTUSDT", 1)
        t.wait_for(lambda: fake.open_orders("TESTUSDT"), timeout=30)
        stop(t)
    finally:
        t.kill_all()
    monkeypatch.setenv("BINANCE_API_KEY", "not-the-key")
    for run_dir in (tmp_path / "new", t.run_dir):  # a new run, and the one above resumed
        out = naive_mp("start", "TESTUSDT", "--live", "--allow-loss", "--run-dir", run_dir, timeout=60)
        assert out.returncode == 1 and "refused to show the account: -2015 Invalid API-key" in out.stderr
        assert SECRET not in out.stderr
    assert len(fake.orders()) == 1
