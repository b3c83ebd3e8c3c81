#!/usr/bin/env python3
"""Real-order path figures, against the fake Binance on 127.0.0.1 (tests/fakebinance.py).

    python bench/live_orders.py [--orders N]

Prints, each beside its yardstick measured in the same run:
- one LIMIT order placed through our `BinanceRest.place` (limiter, headers,
  outcome handling) against python-binance's bare `Client.create_order` to
  the same fake: what our safety costs per order;
- an order whose reply is lost (503 after booking): how long `place` takes to
  find it by client id, against one plain placing;
- the pure book (exchange/binance_book.py): applying one executionReport and
  telling the fill, in microseconds.
"""

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from binance import Client  # noqa: E402

from fakebinance import TESTUSDT_INFO, FakeBinance  # noqa: E402
from naive_mp.core.messages import PlaceOrder  # noqa: E402
from naive_mp.exchange import binance_book as book  # noqa: E402
from naive_mp.exchange.binance_rest import BinanceRest, Timing  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret"


def order(i: int) -> PlaceOrder:
    return PlaceOrder(client_order_id=f"TESTUSDT-{i}-1-B", symbol="TESTUSDT", trader_id=i, side="BUY",
                      price=Decimal("0.5000"), quantity=Decimal("2.00"))


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    return f"p50 {statistics.median(samples) * 1e3:.2f} ms, p90 {samples[int(len(samples) * 0.9)] * 1e3:.2f} ms"


def main() -> None:
    import logging
    logging.getLogger("naive_mp.binance").setLevel(logging.ERROR)  # the lost replies are on purpose here
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    n = parser.parse_args().orders
    with FakeBinance(exchange_info=TESTUSDT_INFO, api_key=KEY, api_secret=SECRET,
                     balances={"USDT": "1000000"}) as fake:
        bare = Client(KEY, SECRET, ping=False)
        bare.API_URL = fake.api_url + "/api"
        ours = BinanceRest(KEY, SECRET, fake.api_url, timing=Timing(resolve_s=5.0, poll_s=0.05))
        yard, mine = [], []
        for i in range(1, n + 1):  # interleaved, so both see the same machine
            began = time.perf_counter()
            bare.create_order(symbol="TESTUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="2.00",
                              price="0.5000", newClientOrderId=f"TESTUSDT-{i}-9-B")
            yard.append(time.perf_counter() - began)
            began = time.perf_counter()
            ours.place(order(i))
            mine.append(time.perf_counter() - began)
        print(f"place one order, python-binance Client.create_order (yardstick): {ms(yard)}")
        print(f"place one order, BinanceRest.place (ours):                     {ms(mine)}"
              f"  ({statistics.median(mine) / statistics.median(yard):.2f}x)")
        lost = []
        for i in range(n + 1, n + 21):
            fake.lose_reply(1, mode="503")
            began = time.perf_counter()
            _, how = ours.place(order(i))
            lost.append(time.perf_counter() - began)
            assert how == "found after an unknown outcome", how
        print(f"reply lost (503 after booking), found by client id:            {ms(lost)}  (20 orders)")
        assert len({o["clientOrderId"] for o in fake.orders()}) == len(fake.orders()), "an order placed twice"
    report = {"c": "TESTUSDT-1-1-B", "x": "TRADE", "X": "FILLED", "i": 1, "l": "2.00", "z": "2.00",
              "L": "0.50000000", "n": "0.00200000", "N": "TEST", "t": 5, "Z": "1.00000000"}
    repeats = 20_000
    began = time.perf_counter()
    for _ in range(repeats):
        o = book.new_order(order(1), "TEST", 1, 0)
        book.apply_report(o, report)
        book.news(o)
    per = (time.perf_counter() - began) / repeats * 1e6
    print(f"book: new order + one executionReport + its fill told:        {per:.1f} us")


if __name__ == "__main__":
    main()
