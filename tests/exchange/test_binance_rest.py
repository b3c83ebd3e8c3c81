"""BinanceRest against the fake Binance, with the real python-binance Client: every outcome of a place."""

import threading
from decimal import Decimal

import pytest

from fakebinance import TESTUSDT_INFO, FakeBinance, wait_until
from naive_mp.core.messages import PlaceOrder
from naive_mp.exchange.binance_rest import BinanceRest, OutcomeUnknown, Timing
from naive_mp.exchange.errors import ExchangeRefused

KEY, SECRET = "rest-key", "rest-secret"
BUY = PlaceOrder(client_order_id="TESTUSDT-1-1-B", symbol="TESTUSDT", trader_id=1, side="BUY",
                 price=Decimal("0.5000"), quantity=Decimal("40.00"))  # 20 USDT


@pytest.fixture
def fake():
    with FakeBinance(exchange_info=TESTUSDT_INFO, api_key=KEY, api_secret=SECRET, balances={"USDT": "25"}) as server:
        yield server


def rest(fake, **timing) -> BinanceRest:
    return BinanceRest(KEY, SECRET, fake.api_url, timing=Timing(**{"resolve_s": 0.5, "poll_s": 0.1, **timing}))


def test_a_reply_lost_while_the_order_is_invisible_is_found_by_its_client_id(fake):
    fake.lose_reply(1, mode="503", invisible_s=0.3)
    answer, how = rest(fake).place(BUY)
    assert how == "found after an unknown outcome" and answer["clientOrderId"] == BUY.client_order_id
    assert len(fake.orders()) == 1


def test_a_refusal_is_a_refusal_and_nothing_is_booked(fake):
    fake.reject_next(-1013, "Filter failure: PRICE_FILTER")
    with pytest.raises(ExchangeRefused) as refused:
        rest(fake).place(BUY)
    assert refused.value.code == -1013 and fake.orders() == []


def test_an_error_after_an_unknown_outcome_is_never_taken_for_a_refusal(fake):
    """Booked, reply lost, filled while invisible: placing again is refused -2010 (its funds are spent).

    That -2010 says nothing of the first attempt: taken as "not placed", the trader would
    place the same order later, and buy twice.
    """
    fake.lose_reply(1, mode="503", invisible_s=30)

    def fill_when_booked():
        if wait_until(lambda: fake.order_posts >= 1, timeout=10):
            fake.fill(BUY.client_order_id)
    filler = threading.Thread(target=fill_when_booked)
    filler.start()
    with pytest.raises(OutcomeUnknown, match="after an attempt whose outcome is unknown"):
        rest(fake, rounds=2).place(BUY)
    filler.join()
    assert [o["status"] for o in fake.orders()] == ["FILLED"], "one order, never a second"


def test_a_clock_off_binance_s_is_resynced_and_the_same_request_sent_again(fake):
    client = rest(fake)
    fake.skew_clock(-30_000)
    answer, how = client.place(BUY)
    assert how == "placed" and client.client.timestamp_offset < -29_000 and len(fake.orders()) == 1
