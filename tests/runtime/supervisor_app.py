"""A supervisor over dummy children, run as a script by test_supervisor.py.

    python supervisor_app.py RUN_DIR SCENARIO

The dummies behave like the real roles from the supervisor's side: they make
their own zmq context, beat every 0.2 s and stop on SIGTERM. Each records its
forks and stops in RUN_DIR/forks.log and RUN_DIR/stops.log.
"""

import os
import signal
import sys
import time
from pathlib import Path

from naive_mp.runtime.control import ControlLink
from naive_mp.runtime.process import BootError, fork_child
from naive_mp.runtime.rundir import RunDirError
from naive_mp.runtime.supervisor import ChildSpec, Supervisor
from naive_mp.wire import ProcessInfo, RunSpec

BEAT_S = 0.2


def record(run_dir: str, what: str, name: str) -> None:
    fd = os.open(Path(run_dir) / f"{what}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{name} {os.getpid()} {time.monotonic():.3f}\n".encode())
    os.close(fd)


def dummy(run_dir, name, role, symbol=None, *, traders=0, boot_fail=False, exit_after=None,
          ignore_term=False, beats=True):
    """A child body: beats until SIGTERM (or `exit_after` s, then exit 0)."""
    def body():
        record(run_dir, "forks", name)
        if boot_fail:
            raise BootError(f"{name} cannot boot (test)")
        stop = []
        signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_term else lambda *_: stop.append(1))
        signal.signal(signal.SIGHUP, lambda *_: record(run_dir, "reloads", name))
        link = ControlLink(run_dir)
        kids = [fork_child(f"trader {symbol}#{i} BUY_PLACED", sleep_forever) for i in range(1, traders + 1)]
        info = ProcessInfo(role=role, pid=os.getpid(), symbol=symbol, state="running", started_at=time.time())
        kid_infos = [ProcessInfo(role="trader", pid=pid, symbol=symbol, trader_id=i, state="BUY_PLACED")
                     for i, pid in enumerate(kids, 1)]
        started = time.monotonic()
        while not stop and (exit_after is None or time.monotonic() - started < exit_after):
            if beats:
                link.beat(info, kid_infos)
            time.sleep(BEAT_S)
        for pid in kids:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        record(run_dir, "stops", name)
        link.close()
    return body


def sleep_forever():
    while True:
        time.sleep(1)


def scenario(run_dir: str, name: str) -> tuple[list[ChildSpec], dict]:
    """The wanted children and Supervisor options of one test scenario."""
    gateway = ChildSpec("gateway", "gateway", None, "gateway paper", dummy(run_dir, "gateway", "gateway"))
    leader = ChildSpec("leader-XRPUSDT", "leader", "XRPUSDT", "leader XRPUSDT",
                       dummy(run_dir, "leader-XRPUSDT", "leader", "XRPUSDT", traders=1))
    streamer = ChildSpec("streamer", "streamer", None, "streamer", dummy(run_dir, "streamer", "streamer"))
    if name == "basic":
        return [gateway, leader, streamer], {}
    if name == "boot":
        bad = ChildSpec("leader-XRPUSDT", "leader", "XRPUSDT", "leader XRPUSDT",
                        dummy(run_dir, "leader-XRPUSDT", "leader", boot_fail=True))
        return [gateway, bad], {}
    if name == "end":
        short = ChildSpec("streamer", "streamer", None, "streamer",
                          dummy(run_dir, "streamer", "streamer", exit_after=0.6))
        return [gateway, leader, short], {}
    if name == "stale":
        mute = ChildSpec("gateway", "gateway", None, "gateway paper",
                         dummy(run_dir, "gateway", "gateway", beats=False))
        return [mute], {"stale_s": 0.5, "boot_grace_s": 0.5}
    if name == "stubborn":
        deaf = ChildSpec("gateway", "gateway", None, "gateway paper",
                         dummy(run_dir, "gateway", "gateway", ignore_term=True))
        return [deaf, streamer], {"grace_s": 0.5}
    raise SystemExit(f"unknown scenario {name}")


def main(run_dir: str, name: str) -> int:
    children, options = scenario(run_dir, name)
    spec = RunSpec(run_dir=run_dir, symbols=["XRPUSDT"], settings={}, filters={}, exit_at_end=name == "end")
    try:
        return Supervisor(spec, children, **options).run()
    except RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
