#!/usr/bin/env python3
"""What the state store costs and what it buys, from real runs of the CLI.

    python bench/resume.py [--kills N] [--only abc] [--baseline COMMIT]

(a) lockstep speed: `start --replay XRPUSDT-2019-06-01 --lockstep` beside
    `backtest` of the same tape, in this run, with this checkout's code (and
    with --baseline COMMIT's code too, for the figure before the store);
(b) leader restart: kill -9 of a leader whose 5 traders hold open SELLs, to
    all 5 back up (each trader's "back up" log line), over several kills;
(c) torture: N random kill -9s of traders, leaders, the gateway, the
    streamer, the supervisor and the whole tree on free-running replays (the
    same `start` again after the tree died), then the store's invariants:
    duplicate client ids, open orders without their trader, trader states
    without their order, more than `chunks` traders or open BUYs, and the
    paper ledger;
(d) rogue frames (garbage, half-right msgpack, big ones) on every socket of a
    running tree: processes gone, "crashed" log lines, the log's size, and
    each process's resident memory and descriptors before and after.

Store cost on tick-to-order latency and trader restart: run
`bench/runtime.py --only ac` on this checkout and on the baseline (PYTHONPATH
set to a worktree of it), as --baseline does for (a).
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAPE = ROOT.parent / "shared" / "data" / "tapes" / "XRPUSDT-trades-2019-06-01.zip"
FILTERS = ["--tick-size", "0.00001", "--step-size", "0.1", "--min-qty", "0.1", "--min-notional", "10"]
sys.path.insert(0, str(ROOT / "tests" / "runtime"))
from ledger import invariant_errors, orders  # noqa: E402  (the same checks the tests make)
from tree import Tree, alive, write_tape  # noqa: E402


def cli(*args, env=None, timeout=600) -> tuple[subprocess.CompletedProcess, float]:
    """`naive-mp ARGS` timed; run from a neutral folder, since `python -m` puts the current one first on the path."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tempfile.gettempdir())
    return done, time.perf_counter() - began


def code_env(commit: str | None, base: Path) -> tuple[dict, str]:
    """The environment that runs `commit`'s code (a detached worktree), or this checkout's."""
    if not commit:
        head = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                              text=True).stdout.strip()
        return dict(os.environ), f"this checkout ({head})"
    tree = base / f"baseline-{commit[:8]}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
                   check=True, capture_output=True)
    return {**os.environ, "PYTHONPATH": str(tree)}, f"baseline {commit[:8]}"


def stage_lockstep(args, base: Path) -> None:
    print(f"(a) lockstep vs backtest, {TAPE.name}")
    done, backtest_s = cli("backtest", TAPE, *FILTERS, "--json", "--orders-out", base / "backtest.csv")
    if done.returncode:
        print("  backtest failed:", done.stderr[-500:])
        return
    events = json.loads(done.stdout)["events"]
    print(f"  backtest              {backtest_s:7.2f} s whole command  {events / backtest_s:>10,.0f} trades/s")
    for commit in [None] + ([args.baseline] if args.baseline else []):
        env, name = code_env(commit, base)
        run_dir = base / f"lockstep-{commit or 'head'}"
        done, took = cli("start", "--replay", TAPE, "--lockstep", "--exit-at-end", *FILTERS, "--run-dir", run_dir,
                         "--orders-out", run_dir.with_suffix(".csv"), env=env)
        if done.returncode:
            print(f"  lockstep ({name}) failed:", done.stderr[-500:])
            continue
        same = run_dir.with_suffix(".csv").read_bytes() == (base / "backtest.csv").read_bytes()
        print(f"  lockstep {name:<24} {took:7.2f} s whole command  {events / took:>10,.0f} trades/s  "
              f"{took / backtest_s:5.1f}x backtest  orders {'equal' if same else 'DIFFER'}")


def falling_tape(folder: Path, flat: int) -> Path:
    prices = []
    for k in range(8):
        prices += [f"{1 - 0.0015 * k:.8f}"] * 6
    prices += [f"{1 - 0.0015 * 7:.8f}"] * flat
    return write_tape(folder / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=25)


def log_ms(line: str) -> float:
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp() * 1000


def stage_leader_restart(args, base: Path) -> None:
    print("(b) kill -9 of a leader with 5 traders holding SELLs -> all 5 back up")
    times = []
    for i in range(args.leader_kills):
        folder = base / f"leader-{i}"
        folder.mkdir()
        t = Tree(folder / "run", "--replay", falling_tape(folder, 2000), "--speed", "1",
                 "--tick-size", "0.0001", "--step-size", "0.01")
        try:
            t.wait_for(lambda: len([p for p in t.processes("trader") if p["state"] == "SELL_PLACED"]) == 5,
                       timeout=60)
            leader = t.processes("leader")[0]
            offset = len(t.log())
            killed_ms = time.time() * 1000
            os.kill(leader["pid"], signal.SIGKILL)
            lines = t.wait_for(lambda: len(b := re.findall(r"^(.*) naive_mp.trader: \S+: up \(pid", t.log()[offset:], re.M)) >= 5
                               and b, timeout=30)
            times.append(max(log_ms(line) for line in lines) - killed_ms)
        finally:
            t.kill_all()
    times.sort()
    print(f"  {len(times)} kills: median {times[len(times) // 2]:.0f} ms, max {times[-1]:.0f} ms "
          f"(kill to the 5th trader up: reconciled, about to say hello; log clock)")


def wavy_tape(folder: Path, n: int) -> Path:
    levels = ["1.0000", "0.9970", "0.9960", "1.0020"]
    return write_tape(folder / "TESTUSDT-trades-2024-01-01.csv", [levels[(i // 10) % 4] for i in range(n)], gap_ms=25)


def stage_torture(args, base: Path) -> None:
    print(f"(c) torture: {args.kills} random kill -9s on free-running replays")
    rng = random.Random(args.seed)
    roles = ("trader",) * 4 + ("leader", "gateway", "streamer", "supervisor", "tree")
    kills, runs, problems, order_total = Counter(), 0, Counter(), 0
    began = time.monotonic()
    while sum(kills.values()) < args.kills:
        runs += 1
        folder = base / f"torture-{runs}"
        folder.mkdir()
        n = _torture_run(folder, rng, roles, kills, args.kills, problems)
        order_total += n
        progress = sum(kills.values())
        print(f"  run {runs}: {progress}/{args.kills} kills, {n} orders, "
              f"{sum(problems.values())} problems", file=sys.stderr, flush=True)
    took = time.monotonic() - began
    print(f"  {sum(kills.values())} kills in {runs} runs ({took:.0f} s): "
          + ", ".join(f"{role} {n}" for role, n in kills.most_common()))
    print(f"  {order_total} orders; problems found: {dict(problems) or 0}")
    print(f"  from the logs: {dict(EVENTS)} (restarts: a child restarted by the supervisor, or a trader back up)")


def _torture_run(folder: Path, rng, roles, kills: Counter, limit: int, problems: Counter) -> int:
    run_dir = folder / "run"
    args = ("--replay", wavy_tape(folder, 1200), "--speed", "2", "--exit-at-end", "--tick-size", "0.0001",
            "--step-size", "0.01")
    t = Tree(run_dir, *args)
    try:
        t.wait_for(lambda: t.processes("trader"), timeout=30)
        while t.proc.poll() is None and sum(kills.values()) < limit:
            time.sleep(rng.uniform(0.05, 0.4))
            role = rng.choice(roles)
            pids = [t.proc.pid] if role in ("supervisor", "tree") else \
                [p["pid"] for p in t.processes(role) if p["pid"] > 0 and alive(p["pid"])]
            if not pids or t.proc.poll() is not None:
                continue
            (os.killpg if role == "tree" else os.kill)(rng.choice(pids), signal.SIGKILL)
            kills[role] += 1
            if role in ("supervisor", "tree"):
                t.proc.wait(10)
                t.kill_all()
                _count(problems, invariant_errors(run_dir, chunks=5))
                t = Tree(run_dir, *args)
                t.wait_for(lambda: t.status(), timeout=30)
        t.wait(timeout=120)
    finally:
        t.kill_all()
    _count(problems, invariant_errors(run_dir, chunks=5))
    log = t.log()
    if "Traceback" in log:
        problems["traceback in the log"] += 1
    EVENTS["restarts"] += len(re.findall(r"restarting \S+ in |back up \(pid", log))
    EVENTS["give-ups"] += log.count("giving up on")
    EVENTS["crashed by an exception"] += log.count("crashed:")
    return len(orders(run_dir))


EVENTS: Counter = Counter()  # restarts, give-ups and crashes seen in the torture's logs


def _count(problems: Counter, errors: list[str]) -> None:
    for error in errors:
        problems[re.sub(r"[\d.#]+", "N", error)] += 1


# (socket, zmq type to reach it with): every socket of the run directory a stranger can reach
ROGUE_TARGETS = (("gateway", "DEALER"), ("leader-TESTUSDT", "DEALER"), ("control", "DEALER"), ("acks", "PUSH"),
                 ("trades", "XSUB"), ("updates", "XSUB"))


def rogue_frame(rng) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 1:
        return b"\x92\xa6Report" + rng.randbytes(rng.randrange(0, 200))  # msgpack-ish, wrong inside
    if kind == 2:
        return b"\x01TESTUSDT " + rng.randbytes(rng.randrange(0, 32))  # a subscription, then garbage
    return rng.randbytes(rng.randrange(10_000, 2_000_000))  # big


def process_figures(pid: int) -> tuple[int, int]:
    """(resident KiB, open descriptors) of a live process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def stage_rogue(args, base: Path) -> None:
    import zmq
    print(f"(d) {args.frames} rogue frames on every socket of a running tree")
    rng = random.Random(args.seed)
    folder = base / "rogue"
    folder.mkdir()
    t = Tree(folder / "run", "--replay", falling_tape(folder, 4000), "--speed", "1",
             "--tick-size", "0.0001", "--step-size", "0.01")
    ctx = zmq.Context()
    try:
        t.wait_for(lambda: len(t.processes("trader")) == 5, timeout=60)
        before = {p["pid"]: (p["role"], process_figures(p["pid"])) for p in t.status()["processes"]}
        sockets = []
        for name, kind in ROGUE_TARGETS:
            sock = ctx.socket(getattr(zmq, kind))
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, 100)
            sock.connect(f"ipc://{folder / 'run' / (name + '.sock')}")
            sockets.append(sock)
        sent = 0
        for _ in range(args.frames):
            try:
                rng.choice(sockets).send(rogue_frame(rng))
                sent += 1
            except zmq.ZMQError:
                pass
        time.sleep(3)  # let them read it all
        after = {p["pid"]: p for p in t.status()["processes"]}
        gone = [f"{role} {pid}" for pid, (role, _) in before.items() if pid not in after]
        crashed = t.log().count("crashed:")
        print(f"  {sent} frames sent; processes gone since: {gone or 0}; 'crashed' log lines: {crashed}; "
              f"log {len(t.log()) / 1e6:.2f} MB")
        for pid, (role, (rss, fds)) in sorted(before.items(), key=lambda kv: kv[1][0]):
            if pid in after:
                rss2, fds2 = process_figures(pid)
                print(f"  {role:<9} pid {pid}: RSS {rss / 1024:6.1f} -> {rss2 / 1024:6.1f} MiB, fds {fds} -> {fds2}")
    finally:
        ctx.destroy(linger=0)
        t.kill_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="abcd", help="stages to run: a, b, c, d")
    parser.add_argument("--kills", type=int, default=1000, help="kills in the torture (c)")
    parser.add_argument("--leader-kills", type=int, default=5, help="leader kills in (b)")
    parser.add_argument("--baseline", help="also time (a) with this commit's code (e.g. 0ca46e8, before the store)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=1000, help="rogue frames in (d)")
    args = parser.parse_args()
    if not TAPE.exists():
        print(f"missing {TAPE}: the benchmarks read ../shared/data", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="naive-mp-bench-") as tmp:
        base = Path(tmp)
        try:
            for stage, run in (("a", stage_lockstep), ("b", stage_leader_restart), ("c", stage_torture),
                               ("d", stage_rogue)):
                if stage in args.only:
                    run(args, base)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
