"""The child-process rules shared by the supervisor and the leaders: a pure policy, and reaping."""

import subprocess
import sys

import pytest

from naive_mp.runtime.children import RESTARTS, RestartPolicy, Verdict, is_stale


def deaths(policy: RestartPolicy, hellos: list[bool]) -> list[Verdict]:
    """The verdicts on consecutive deaths of one child; `hellos[i]`: it said hello before death i."""
    verdicts, failures = [], 0
    for said_hello in hellos:
        verdict = policy.after_death(failures, said_hello)
        verdicts.append(verdict)
        failures = verdict.failures
    return verdicts


@pytest.mark.parametrize("hellos, delays", [
    ([False] * 5, [0.1, 0.2, 0.4, 0.8, None]),  # a child that cannot boot: backed off, then given up
    ([True] * 20, [0.0] * 20),  # killed from outside after its hello, however often: at once, never given up
    ([False, False, False, True, False], [0.1, 0.2, 0.4, 0.0, 0.1]),  # a hello ends the streak
    ([False, False, False, False, True, False, False, False, False, False], [0.1, 0.2, 0.4, 0.8, 0.0,
                                                                              0.1, 0.2, 0.4, 0.8, None]),
])
def test_only_deaths_before_hello_back_off_and_give_up(hellos, delays):
    assert [v.delay_s for v in deaths(RESTARTS, hellos)] == delays


def test_the_delay_is_capped_and_the_streak_counted():
    verdicts = deaths(RestartPolicy(first_delay_s=1, max_delay_s=3, give_up_after=6), [False] * 6)
    assert [v.delay_s for v in verdicts] == [1, 2, 3, 3, 3, None]
    assert [v.failures for v in verdicts] == [1, 2, 3, 4, 5, 6]
    assert [v.gave_up for v in verdicts] == [False] * 5 + [True]


@pytest.mark.parametrize("now, heard, stale", [
    (105.0, None, False),  # booting: within its grace
    (111.0, None, True),  # no hello after the boot grace
    (111.0, 110.5, False),  # heard from lately
    (114.0, 111.0, True),  # silent longer than the stale limit
    (101.0, 100.5, False),  # spoke at once: the stale limit, not the boot grace, counts from then
    (103.0, 100.5, True),
])
def test_stale_after_silence_or_no_hello(now, heard, stale):
    assert is_stale(now, 100.0, heard, stale_s=2.0, boot_grace_s=10.0) is stale


SCRIPT = r"""
import os, signal, time
from naive_mp.runtime.children import reap, reap_until_gone, send_signal

def child(code):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.05 if code is not None else 60)
        os._exit(code or 0)
    return pid

quick, seven, sleeper = child(0), child(7), child(None)
assert send_signal(sleeper, signal.SIGKILL)
time.sleep(0.3)
names = {quick: "quick", seven: "seven", sleeper: "sleeper"}
print(sorted((names[pid], code) for pid, code in reap()))
print(send_signal(sleeper, signal.SIGTERM), list(reap()))  # reaped: gone, nothing left
stubborn = child(None)
print(reap_until_gone([stubborn], 0.2) == {stubborn})
send_signal(stubborn, signal.SIGKILL)
print(reap_until_gone([stubborn, 1], 5.0))  # pid 1 is nobody's child here: not waited for
"""


def test_reap_gives_every_exit_and_signal_tolerates_the_gone():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines() == ["[('quick', 0), ('seven', 7), ('sleeper', -9)]", "False []",
                                          "True", "set()"], result.stderr
