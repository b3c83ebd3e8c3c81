"""Repeated warnings are rate-limited: a flood of rogue frames writes a few lines and a count."""

import logging
import re

import pytest

from naive_mp import logs, wire


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.WARNING)
    return lambda: [r.getMessage() for r in caplog.records]


def held_counts(messages):
    return [int(m.group(1)) for m in (re.search(r"\[(\d+) more like it", x) for x in messages) if m]


def test_a_flood_logs_the_first_few_then_one_count_per_interval(lines):
    clock = Clock()
    throttle = logs.Throttle(logging.getLogger("t"), burst=5, interval_s=10.0, clock=clock)
    for i in range(60_000):  # 60k warnings over 30 s
        clock.now = 1000.0 + i * 0.0005
        throttle.warning("bad frame %d", i)
    assert lines()[:5] == [f"bad frame {i}" for i in range(5)]
    assert len(lines()) == 5 + 2  # one count line each 10 s, two so far
    assert re.fullmatch(r"bad frame \d+ \[\d+ more like it over 10 s, not logged\]", lines()[5])
    clock.now += 10.0
    throttle.flush()  # what is held when the flood stops is counted too
    assert sum(held_counts(lines())) == 60_000 - 5
    assert len(lines()) == 8


def test_after_a_quiet_interval_warnings_are_logged_again(lines):
    clock = Clock()
    throttle = logs.Throttle(logging.getLogger("t"), burst=2, interval_s=10.0, clock=clock)
    for i in range(4):
        throttle.warning("bad %d", i)
    clock.now += 11.0
    throttle.warning("bad again")
    assert lines() == ["bad 0", "bad 1", "bad 3 [2 more like it over 0 s, not logged]", "bad again"]


def test_flush_waits_for_the_interval():
    clock = Clock()
    held = []
    logger = logging.getLogger("t.flush")
    logger.addHandler(handler := logging.Handler())
    handler.emit = lambda record: held.append(record.getMessage())
    try:
        throttle = logs.Throttle(logger, burst=1, interval_s=10.0, clock=clock)
        throttle.warning("a")
        throttle.warning("b")
        throttle.flush()
        assert held == ["a"] and throttle.held == 1
        clock.now += 10.0
        throttle.flush()
        assert held == ["a", "b [1 more like it over 0 s, not logged]"] and throttle.held == 0
    finally:
        logger.removeHandler(handler)


def test_rogue_frames_on_one_socket_write_a_few_lines_not_one_each(lines):
    decode = wire.Decoder("gateway", wire.GatewayRequest)
    for _ in range(60_000):
        assert decode.or_drop(b"\x93garbage") is None
    rogue = [m for m in lines() if "rogue message on the gateway socket" in m]
    assert 1 <= len(rogue) <= logs.THROTTLE_BURST + 1
    good = wire.encode(wire.Query(req_id=1, client_order_id="X-1-1-B"))
    assert decode.or_drop(good) == wire.Query(req_id=1, client_order_id="X-1-1-B")
