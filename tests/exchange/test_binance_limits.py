"""The one limiter of the live gateway's requests: weights, order counts, Retry-After, bans."""

from naive_mp.exchange.binance_limits import Limiter

INFO = {"rateLimits": [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000}]}


def test_the_limits_come_from_exchange_info():
    limiter = Limiter.from_exchange_info(INFO)
    assert (limiter.weight_per_minute, limiter.orders_per_10s) == (1200, 50)


def test_weight_near_the_limit_waits_for_the_next_minute_and_below_it_nothing_waits():
    limiter = Limiter.from_exchange_info(INFO)
    limiter.note_headers({"X-MBX-USED-WEIGHT-1M": "1000"}, now=120.0)
    assert limiter.wait_s(120.0) == 0
    limiter.note_headers({"X-MBX-USED-WEIGHT-1M": "1100"}, now=125.0)
    assert limiter.wait_s(125.0) == 55.0 and limiter.wait_s(180.0) == 0


def test_orders_near_the_ten_second_limit_wait_for_the_window():
    limiter = Limiter.from_exchange_info(INFO)
    limiter.note_headers({"X-MBX-ORDER-COUNT-10S": "46"}, now=103.0)
    assert limiter.wait_s(103.0) == 7.0


def test_retry_after_pauses_everything_and_a_ban_is_not_a_pause():
    limiter = Limiter()
    assert limiter.note_retry_after({"Retry-After": "3"}, now=10.0) == 3.0
    assert limiter.wait_s(10.0) == 3.0 and not limiter.banned(10.0)
    assert limiter.note_ban({"Retry-After": "120"}, now=11.0) == 120.0
    assert limiter.banned(130.0) and not limiter.banned(131.0)


def test_garbage_headers_change_nothing():
    limiter = Limiter()
    limiter.note_headers({"X-MBX-USED-WEIGHT-1M": "lots", "X-MBX-ORDER-COUNT-10S": None}, now=1.0)
    assert limiter.wait_s(1.0) == 0
    assert limiter.note_retry_after({"Retry-After": "soon"}, now=1.0) == 1.0  # the default
