"""Signals as data: handlers only record, and wake the process's poll loop.

A handler that did real work could run in the middle of a socket call; so,
like gunicorn's arbiter, each handler appends the signal to a queue and the
wakeup fd (registered in the zmq poller) makes the loop look at it now.
"""

import os
import signal


class SignalQueue:
    """Records `signals` as they arrive; `fd` becomes readable on each one."""

    def __init__(self, signals=(signal.SIGTERM,)):
        # Not SIGINT by default: children leave it ignored, as Ctrl-C reaches the whole
        # process group and the supervisor alone orders the shutdown (gateway last).
        self.pending: list[int] = []
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in signals:
            signal.signal(signum, self._record)

    def _record(self, signum, frame):
        self.pending.append(signum)

    @property
    def fd(self) -> int:
        return self._read

    def take(self) -> list[int]:
        """The signals received since the last call, oldest first."""
        # The handler has always run by the time a poll returns to Python, so an
        # empty queue means an empty pipe: no read (no system call) on the hot path.
        if not self.pending:
            return []
        try:
            while os.read(self._read, 512):
                pass
        except BlockingIOError:
            pass
        taken, self.pending[:] = self.pending[:], []
        return taken
