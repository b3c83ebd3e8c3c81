"""The REST worker thread against the fake Binance: jobs in, plain results posted back."""

import queue
import time

from fakebinance import TESTUSDT_INFO, FakeBinance
from naive_mp.exchange.binance_orders import CheckJob, RestWorker, Snapshot, Vanished
from naive_mp.exchange.binance_rest import BinanceRest, OutcomeUnknown, Timing

KEY, SECRET = "worker-key", "worker-secret"


def test_orders_that_may_never_have_been_sent_are_settled_together_in_one_wait():
    """After a restart: one was booked (its reply lost, invisible a while), one never left. One wait for both."""
    with FakeBinance(exchange_info=TESTUSDT_INFO, api_key=KEY, api_secret=SECRET, balances={"USDT": "100"}) as fake:
        rest = BinanceRest(KEY, SECRET, fake.api_url, timing=Timing(resolve_s=2.0, poll_s=0.1))
        fake.lose_reply(1, mode="503", invisible_s=0.5)
        try:
            rest.call("create_order", symbol="TESTUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                      quantity="10.00", price="0.5000", newClientOrderId="TESTUSDT-1-1-B")
        except OutcomeUnknown:
            pass
        results: queue.Queue = queue.Queue()
        worker = RestWorker(rest, results.put)
        worker.start()
        began = time.monotonic()
        worker.submit(CheckJob((("TESTUSDT", "TESTUSDT-1-1-B", True), ("TESTUSDT", "TESTUSDT-2-1-B", True),
                                ("TESTUSDT", "TESTUSDT-3-1-B", True)), "at start"))
        got = [results.get(timeout=10) for _ in range(3)]
        took = time.monotonic() - began
        worker.close()
    assert {type(r).__name__ for r in got} == {"Snapshot", "Vanished"}
    (found,) = [r for r in got if isinstance(r, Snapshot)]
    assert found.client_order_id == "TESTUSDT-1-1-B" and found.answer["status"] == "NEW"
    assert sorted(r.client_order_id for r in got if isinstance(r, Vanished)) == ["TESTUSDT-2-1-B", "TESTUSDT-3-1-B"]
    assert took < 3.8, f"one wait of resolve_s (2 s) for both doubtful ones, not 2 s each ({took:.2f} s)"
