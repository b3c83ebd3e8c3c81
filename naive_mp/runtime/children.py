"""What the supervisor and a leader both do with the processes they forked.

The supervisor watches the streamer, the gateway and the leaders; a leader
watches its traders. Both reap exited children, signal pids that may be gone
already, kill children that went silent, and restart the dead ones under one
policy, which lives here once:

- A child that dies before its hello (its first useful step: a trader's
  Hello to its leader; the first heartbeat of the supervisor's children)
  failed to boot. Consecutive boot failures are restarted after a growing
  delay, and given up after `RestartPolicy.give_up_after` of them in a row:
  restarting at once would only loop on the same failure.
- A child that said hello, then died (crashed, killed from outside, killed
  as stale), is restarted at once, however often: it can boot, and what it
  was doing (an open order, a stream) must go on now. Its death clears the
  streak of boot failures.

The policy and the stale check are pure: the caller passes the time in.
"""

import os
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from naive_mp.runtime.process import child_pids

GAVE_UP = "GAVE_UP"  # the state `status` shows for a child given up on, until the run ends


def reap() -> Iterator[tuple[int, int]]:
    """(pid, exit code) of each exited child, until none is waiting (`waitpid(-1, WNOHANG)` until 0).

    The exit code is `os.waitstatus_to_exitcode`'s: minus the signal number for
    a child killed by a signal. Ends at once when this process has no child.
    """
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)


def send_signal(pid: int, signum: int) -> bool:
    """Send `signum` to `pid`; False when it is already gone (its exit is the reaper's news)."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def reap_until_gone(pids: Iterable[int], timeout_s: float) -> set[int]:
    """Reap until none of `pids` runs any more, or `timeout_s` passed; the pids still running.

    For the end of a process's life, when no exit needs handling any more: what
    else is reaped meanwhile is dropped.
    """
    left = set(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        for _ in reap():
            pass
        left &= set(child_pids())  # reaped, or never our child: not waited for
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def stop_or_kill(pids: Iterable[int], grace_s: float, kill_wait_s: float) -> set[int]:
    """Reap `pids` (already asked to stop) as they exit; SIGKILL those left after `grace_s`,
    reap them within `kill_wait_s`. The pids that had to be killed, for the caller to tell."""
    stubborn = reap_until_gone(pids, grace_s)
    for pid in stubborn:
        send_signal(pid, signal.SIGKILL)
    reap_until_gone(stubborn, kill_wait_s)
    return stubborn


def is_stale(now: float, started: float, heard: float | None, *, stale_s: float, boot_grace_s: float) -> bool:
    """True for a child to kill as hung: silent `stale_s` since it was last heard from,
    or, never heard from (no hello yet), `boot_grace_s` since it started.

    Times are from one monotonic clock, read by the caller.
    """
    if heard is None:
        return now - started > boot_grace_s
    return now - heard > stale_s


@dataclass(frozen=True)
class Verdict:
    """What to do about one death."""

    failures: int  # boot failures in a row, this death included (0 after a hello)
    delay_s: float | None  # restart after this long; None: give up on the child

    @property
    def gave_up(self) -> bool:
        return self.delay_s is None


@dataclass(frozen=True)
class RestartPolicy:
    """The one restart policy of the supervisor's children and the leaders' traders."""

    first_delay_s: float = 0.1  # after the first boot failure; doubled after each next one
    max_delay_s: float = 5.0
    give_up_after: int = 5  # boot failures in a row

    def after_death(self, failures: int, said_hello: bool) -> Verdict:
        """The verdict on a death, given the child's boot failures in a row before it.

        Delays after consecutive boot failures: 0.1, 0.2, 0.4, 0.8 s, then give up.
        """
        if said_hello:
            return Verdict(failures=0, delay_s=0.0)
        failures += 1
        if failures >= self.give_up_after:
            return Verdict(failures=failures, delay_s=None)
        return Verdict(failures=failures, delay_s=min(self.first_delay_s * 2 ** (failures - 1), self.max_delay_s))


RESTARTS = RestartPolicy()
