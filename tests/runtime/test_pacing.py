"""`start --speed N`: absurd jumps in a tape's trade times are not waited for (real process trees)."""

import json
import subprocess
import time

import pytest

from naive_mp.runtime.streamer import MAX_JUMP_US, Pacer
from tree import Tree

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]
YEAR_2100_MS = 4_102_444_800_000
NOW_MS = 1_700_000_000_000


def tape_with_times(path, times_ms):
    prices = [f"{1 - 0.001 * i:.8f}" for i in range(len(times_ms))]
    path.write_text("".join(f"{i + 1},{p},1.00000000,{p},{t},True,True\n"
                            for i, (p, t) in enumerate(zip(prices, times_ms))))
    return path


@pytest.mark.parametrize("case, times_ms, jumped_ids", [
    # one edited time, far in the future, in the middle of the tape: the jump there and back
    ("year 2100", [NOW_MS + 100 * i for i in range(10)][:5] + [YEAR_2100_MS]
     + [NOW_MS + 100 * i for i in range(6, 12)], [6, 7]),
    ("first time 0", [0] + [NOW_MS + 100 * i for i in range(1, 12)], [2]),
])
def test_start_at_a_speed_does_not_wait_for_absurd_jumps(tmp_path, case, times_ms, jumped_ids):
    tape = tape_with_times(tmp_path / "TESTUSDT-trades-2024-01-01.csv", times_ms)
    t = Tree(tmp_path / "run", "--replay", tape, "--speed", "200", "--exit-at-end", "--json", *FILTERS)
    try:
        started = time.monotonic()
        try:
            code, out = t.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{case}: the replay hung; log tail:\n{t.log()[-2000:]}")
        assert code == 0, t.log()[-2000:]
        assert json.loads(out)["events"] == len(times_ms)
        assert time.monotonic() - started < 30
        for trade_id in jumped_ids:
            assert f"trade {trade_id}: tape time jumps" in t.log()
    finally:
        t.kill_all()


class FakeStreamer:
    def __init__(self):
        self.waited_ms = 0

    def _serve(self, timeout_ms):
        self.waited_ms += timeout_ms
        time.sleep(timeout_ms / 1000)


def test_pacer_paces_ordinary_gaps_and_skips_jumps():
    times = [0, 10**15, 10**15 + 100_000, 10**15 + MAX_JUMP_US + 200_000, 10**15 + 150_000]
    pacer, streamer = Pacer(10.0, times[0], ids=[11, 12, 13, 14, 15]), FakeStreamer()
    assert pacer.due(times, 0, 5, streamer) == 1
    assert pacer.due(times, 1, 5, streamer) == 2  # the jump to 10**15: due at once, pacing restarts there
    assert streamer.waited_ms == 0
    assert pacer.due(times, 2, 5, streamer) == 3  # 100 ms of tape at 10x: about 10 ms
    assert 5 <= streamer.waited_ms <= 50
    assert pacer.due(times, 3, 5, streamer) == 4  # over an hour ahead: not waited for
    assert pacer.due(times, 4, 5, streamer) == 5  # and over an hour back: pacing restarts there too
    assert streamer.waited_ms <= 50


def test_pacer_batches_stop_before_a_jump():
    times = [0, 1_000, 2_000 + MAX_JUMP_US, 3_000 + MAX_JUMP_US]
    pacer = Pacer(1e6, times[0], ids=[1, 2, 3, 4])
    time.sleep(0.01)  # every ordinary gap is due by now
    assert pacer.due(times, 0, 4, FakeStreamer()) == 2  # the jumped-to trade starts the next batch
    assert pacer.due(times, 2, 4, FakeStreamer()) == 4
