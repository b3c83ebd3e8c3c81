#!/usr/bin/env python3
"""Runtime figures of `naive-mp start`, each beside its target, from real runs.

    python bench/runtime.py [TAPE] [--quick] [--kills N] [--only abcd] [--keep]

About 2.5 minutes (--quick: about 1). `--help` lists the knobs (speeds,
durations, relay messages, --latency-set, --throughput-runs).

Runs the real command line (`python -m naive_mp start/status/stop`) as
subprocesses, each in its own temporary run directory, and prints:

(a) tick-to-order latency p50/p99 (the gateway's gateway-stats.json: from the
    streamer publishing a trade batch to the gateway receiving the order it
    caused) in a paced replay with 5 traders alive (rebuy_interval=0; and by
    default profit_target=-0.002, so that traders keep completing cycles and
    placing orders: with the book's values this tape gives ~16 orders in
    30 s), beside a bare pyzmq two-hop relay over ipc (PUB -> SUB/DEALER ->
    ROUTER, three processes) with messages spaced like that replay, and their
    ratio; then the same relay with 6 more idle SUBs on the PUB, for context
    (the runtime wakes 5 traders, the gateway and the leader per batch);
(b) `--speed max --exit-at-end` throughput on the whole tape and the lost
    events of summary.json;
(c) kill -9 of a trader -> its replacement back up (subscribed, reconciled,
    said hello: the leader's `back up` log line), on our clock and on the
    leader's, over N kills spread across the traders;
(d) private memory (USS = Private_Clean + Private_Dirty of smaps_rollup) of
    each trader and of the leader, beside an idle `python -c "import zmq,
    msgspec, time; time.sleep(5)"`.

Everything started here is stopped on the way out, even on an error or
Ctrl-C: `naive-mp stop`, then SIGTERM, then SIGKILL of the run's own process
group (each run gets a new session). Nothing is hard-coded: a figure that
could not be measured is printed as such, with the reason.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TAPE = ROOT.parent / "shared" / "data" / "tapes" / "XRPUSDT-trades-2019-06-01.zip"
PY = sys.executable
MIB = 1024 * 1024
STATUS_EVERY_S = 3.0  # status polls during the latency run
SLOW_RESTART_MS = 100.0  # a restart slower than this gets its log lines printed

# A trader killed before its hello failed to boot (back-off, then giving up, see
# naive_mp/runtime/children.py): status cannot tell the hello, so the restart
# bench only kills traders up for this long, surely past it.
MIN_AGE_S = 1.0

sys.path.insert(0, str(ROOT))  # naive_mp itself, for the tape reader


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pct(values, q: float) -> float:
    """The q-th percentile, linear between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values) -> float:
    return pct(values, 50)


class NotMeasured(Exception):
    """A figure could not be measured; the message says why."""


# -- memory ------------------------------------------------------------------------------


def smaps(pid: int) -> dict[str, int]:
    """Fields of /proc/PID/smaps_rollup in bytes (Rss, Pss, Private_Clean, ...)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return fields


def uss(pid: int) -> int:
    m = smaps(pid)
    return m["Private_Clean"] + m["Private_Dirty"]


def memory_of(processes: list[dict]) -> dict:
    """USS/PSS/RSS of the live traders and the leader among `processes` (a status listing)."""
    out = {"traders": [], "leader": None}
    for p in processes:
        if p.get("role") not in ("trader", "leader") or not p.get("pid") or p["pid"] <= 0:
            continue
        try:
            m = smaps(p["pid"])
        except OSError:
            continue  # gone since the status
        row = {"pid": p["pid"], "uss": m["Private_Clean"] + m["Private_Dirty"], "pss": m["Pss"], "rss": m["Rss"]}
        if p["role"] == "trader":
            out["traders"].append(row)
        else:
            out["leader"] = row
    return out


def yardstick_uss() -> dict:
    """An idle interpreter that imported zmq and msgspec: its USS (and PSS, RSS)."""
    code = "import zmq, msgspec, time; time.sleep(5)"
    proc = subprocess.Popen([PY, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # both imported: their libraries are mapped
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            if "msgspec" in maps and "zmq" in maps:
                break
            time.sleep(0.05)
        else:
            raise NotMeasured("the idle python did not map zmq and msgspec within 4 s")
        time.sleep(0.3)
        m = smaps(proc.pid)
        return {"pid": proc.pid, "uss": m["Private_Clean"] + m["Private_Dirty"], "pss": m["Pss"], "rss": m["Rss"]}
    finally:
        proc.kill()
        proc.wait()


# -- one `naive-mp start` run -----------------------------------------------------------------


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(line: str) -> float | None:
    """Wall-clock seconds of a naive-mp log line (millisecond resolution)."""
    m = LOG_TIME.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


class Run:
    """`naive-mp start` in a new session, in run directory `run_dir`; `close()` always stops it all."""

    def __init__(self, name: str, base: Path, tape: Path, speed: str, *flags: str):
        self.name = name
        self.run_dir = base / name
        self.run_dir.mkdir(mode=0o700)
        self.out_path, self.err_path = base / f"{name}.out", base / f"{name}.err"
        self.args = [PY, "-m", "naive_mp", "start", "--replay", str(tape), "--speed", speed,
                     "--run-dir", str(self.run_dir), *flags]
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / "naive-mp.log"

    def start(self) -> None:
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.began = time.monotonic()
            self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.pgid = self.proc.pid

    def cli(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "naive_mp", *args, "--run-dir", str(self.run_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def status(self) -> dict | None:
        try:
            done = self.cli("status", "--json", timeout=10)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            return None
        try:
            return json.loads(done.stdout)
        except ValueError:
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """The first match of `pattern` in the log after byte `start`; raise NotMeasured at timeout."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.log_text()[start:])
            if m:
                return m
            self._check_alive()
            if time.monotonic() > deadline:
                raise NotMeasured(f"{self.name}: no log line /{pattern}/ within {timeout:.0f} s")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise NotMeasured(f"{self.name}: naive-mp start exited early with status {self.proc.returncode}; "
                              f"stderr tail: {self.err_path.read_text(errors='replace')[-600:]!r}")

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise NotMeasured(f"{self.name}: naive-mp start still running after {timeout:.0f} s") from None

    def stop(self, timeout: float = 30) -> float:
        """`naive-mp stop`, then wait for the start command to exit; the seconds it took."""
        began = time.monotonic()
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        done = self.cli("stop", timeout=timeout)
        if done.returncode != 0:
            progress(f"{self.name}: naive-mp stop said ({done.returncode}): {done.stderr.strip()[-300:]}")
        self.proc.wait(timeout)
        return time.monotonic() - began

    def close(self) -> None:
        """Stop everything this run started, however it is: graceful first, then by force."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                try:
                    self.stop(timeout=20)
                except (subprocess.TimeoutExpired, OSError) as exc:
                    progress(f"{self.name}: graceful stop failed ({exc}); terminating")
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(8)
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt:
            progress(f"{self.name}: interrupted while stopping; killing it")
        finally:
            self._kill_group()
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()

    def _kill_group(self) -> None:
        # Only when a process of our own session's group is still there (the group id
        # is not reused while any member lives).
        if self.pgid is not None and _group_alive(self.pgid):
            progress(f"{self.name}: processes left in group {self.pgid}; SIGKILL")
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def live_traders(status: dict | None) -> list[dict]:
    if not status:
        return []
    return [p for p in status.get("processes", []) if p.get("role") == "trader" and (p.get("pid") or 0) > 0
            and p.get("state") != "GAVE_UP"]


def leader_of(status: dict | None) -> dict | None:
    return next((p for p in (status or {}).get("processes", []) if p.get("role") == "leader"), None)


def log_problems(run: Run, expected: list[str] = ()) -> tuple[dict[str, int], list[str]]:
    """WARNING/ERROR/CRITICAL lines of the run's log: counts by level, and the unexpected ones."""
    counts: dict[str, int] = {}
    unexpected = []
    for line in run.log_text().splitlines():
        m = re.match(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ", line)
        if m is None:
            if line.startswith("Traceback") or line.startswith("  File "):
                unexpected.append(line)
            continue
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        if not any(re.search(p, line) for p in expected):
            unexpected.append(line)
    return counts, unexpected


# -- (a) tick-to-order latency, and the bare relay beside it --------------------------------


def replay_gaps(tape: Path, speed: float, n: int, cap_s: float) -> list[float]:
    """Seconds between the replay's sends at `speed` (distinct trade times), capped at cap_s."""
    from naive_mp.data.tapes import read_tape, symbol_from_path
    times = read_tape(str(tape), symbol_from_path(str(tape))).times_us.tolist()
    gaps, last = [], times[0]
    for t in times[1:]:
        if t != last:
            gaps.append(min((t - last) / 1e6 / speed, cap_s))
            last = t
        if len(gaps) == n:
            break
    return gaps


def relay_source(address: str, gaps: list[float], warmup: int, subscribers: int, ready) -> None:
    """Process A: PUB (an XPUB, to see the SUBs arrive) of `XRPUSDT ` + monotonic_ns stamp."""
    import zmq
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not only the first
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.bind(address)
    for _ in range(subscribers):
        if not pub.poll(15_000):
            ready.send("missing subscribers")
            return
        pub.recv()
    ready.send("ok")
    pad = b"\0" * 48  # about the size of a one-trade TradeBatch frame
    for i in range(warmup):  # connects everything end to end; not counted
        pub.send(b"XRPUSDT W" + time.monotonic_ns().to_bytes(8, "little") + pad)
        time.sleep(0.002)
    time.sleep(0.05)
    for gap in gaps:
        time.sleep(gap)
        pub.send(b"XRPUSDT M" + time.monotonic_ns().to_bytes(8, "little") + pad)
    pub.send(b"XRPUSDT E" + bytes(8))
    ctx.destroy(linger=1000)


def relay_listener(sub_address: str) -> None:
    """An extra SUB that only receives (fan-out like the runtime's other listeners)."""
    import zmq
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.connect(sub_address)
    sub.setsockopt(zmq.SUBSCRIBE, b"XRPUSDT ")
    while sub.recv()[8:9] != b"E":
        pass
    ctx.destroy(linger=0)


def relay_middle(sub_address: str, dealer_address: str) -> None:
    """Process B: SUB in, the same frame out on a DEALER (as a trader places its order)."""
    import zmq
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(dealer_address)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.connect(sub_address)
    sub.setsockopt(zmq.SUBSCRIBE, b"XRPUSDT ")
    while True:
        frame = sub.recv()
        dealer.send(frame)
        if frame[8:9] == b"E":
            break
    ctx.destroy(linger=1000)


def relay_sink(address: str, result) -> None:
    """Process C: ROUTER; monotonic_ns() - stamp of each measured frame, sent back at the end."""
    import zmq
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(address)
    latencies = []
    while True:
        _, frame = router.recv_multipart()
        now = time.monotonic_ns()
        kind = frame[8:9]
        if kind == b"M":
            latencies.append(now - int.from_bytes(frame[9:17], "little"))
        elif kind == b"E":
            break
    result.send(latencies)
    ctx.destroy(linger=0)


def bare_relay(base: Path, gaps: list[float], listeners: int = 0) -> list[int]:
    """Round trips (ns) of the three-process relay, one per gap; `listeners` extra SUBs on A."""
    import multiprocessing
    mp = multiprocessing.get_context("spawn")  # fresh interpreters: each makes its own zmq context
    folder = Path(tempfile.mkdtemp(prefix="relay-", dir=base))
    a, c = f"ipc://{folder}/a.sock", f"ipc://{folder}/c.sock"
    ready_r, ready_w = mp.Pipe(duplex=False)
    result_r, result_w = mp.Pipe(duplex=False)
    procs = [mp.Process(target=relay_sink, args=(c, result_w), name="relay-C"),
             mp.Process(target=relay_source, args=(a, gaps, 200, 1 + listeners, ready_w), name="relay-A")]
    try:
        for p in procs:
            p.start()
        time.sleep(0.3)  # A and C bound
        more = [mp.Process(target=relay_middle, args=(a, c), name="relay-B")]
        more += [mp.Process(target=relay_listener, args=(a,), name=f"relay-L{i}") for i in range(listeners)]
        for p in more:
            procs.append(p)
            p.start()
        if not ready_r.poll(20) or ready_r.recv() != "ok":
            raise NotMeasured("relay: the SUBs never subscribed to A")
        if not result_r.poll(sum(gaps) + 30):
            raise NotMeasured("relay: C sent no result in time")
        return result_r.recv()
    finally:
        deadline = time.monotonic() + 2  # they end by themselves after the end frame; else killed
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()


def latency_by_side(run: Run, latencies: list[int]) -> dict[str, list[int]] | str:
    """Latencies split by the order's side, or why they cannot be.

    The gateway appends one latency per new place, in placing order, and gives
    order ids in that order: with no refusal, latency i is order id i's.
    """
    import csv
    path = run.run_dir / "orders.csv"
    if not path.is_file():
        return "no orders.csv"
    with open(path, newline="") as f:
        orders = sorted(csv.DictReader(f), key=lambda o: int(o["order_id"]))
    if len(orders) != len(latencies) or re.search(r" refused ", run.log_text()):
        return f"{len(orders)} orders for {len(latencies)} latencies (refusals?): cannot pair them"
    sides: dict[str, list[int]] = {}
    for order, ns in zip(orders, latencies):
        sides.setdefault(order["side"], []).append(ns)
    return sides


def stage_latency(args, base: Path) -> dict:
    res = {}
    extra = [x for kv in args.latency_set for x in ("--set", kv)]
    run = Run("latency", base, args.tape, str(args.latency_speed), *args.filters, "--set", "rebuy_interval=0", *extra)
    try:
        run.start()
        run.wait_log(r"every consumer listens; streaming", 60)
        began = time.monotonic()
        polls, five, max_seen = 0, 0, 0
        orders_at_five = None
        last = None
        while time.monotonic() - began < args.duration:
            st = run.status()
            if st:
                polls += 1
                n = len(live_traders(st))
                max_seen = max(max_seen, n)
                if n >= 5:
                    five += 1
                    if orders_at_five is None:
                        gw = next((p for p in st["processes"] if p["role"] == "gateway"), {})
                        orders_at_five = gw.get("orders", 0)
                last = st
            # Every 3 s: each `status` is a whole interpreter start, CPU the traders share on a small box.
            time.sleep(max(0.0, STATUS_EVERY_S - (time.monotonic() - began) % STATUS_EVERY_S))
        res["memory"] = memory_of(last["processes"]) if last else None
        res["status"] = {"polls": polls, "with_5": five, "max_traders": max_seen, "at_end": len(live_traders(last))}
        res["stop_s"] = run.stop()
    finally:
        run.close()
    res["log"] = log_problems(run)
    stats_path = run.run_dir / "gateway-stats.json"
    if not stats_path.is_file():
        raise NotMeasured(f"no {stats_path.name} after the stop")
    stats = json.loads(stats_path.read_text())
    lat = stats["latency_ns"]
    res["all"] = lat
    res["after5"] = lat[orders_at_five:] if orders_at_five is not None else []
    res["lost"] = stats.get("lost")
    res["by_side"] = latency_by_side(run, lat)
    res["gaps"] = replay_gaps(args.tape, args.latency_speed, args.relay_messages, args.relay_cap_ms / 1000)
    progress(f"(a) runtime done: {len(lat)} orders; bare relay: {len(res['gaps'])} messages, "
             f"{sum(res['gaps']):.0f} s")
    res["relay"] = bare_relay(base, res["gaps"])
    if args.fanout:
        progress(f"(a) bare relay again with {args.fanout} extra SUB listeners (the runtime's fan-out) ...")
        res["relay_fanout"] = bare_relay(base, res["gaps"], args.fanout)
    return res


# -- (b) throughput at --speed max --------------------------------------------------------


def stage_throughput(args, base: Path) -> dict:
    runs = []
    for i in range(1, args.throughput_runs + 1):
        runs.append(throughput_once(args, base, f"throughput{i}"))
        r = runs[-1]
        progress(f"(b) run {i}: exit {r['exit']}, {r['wall_s']:.1f} s"
                 + (", streamer " + f"{r['streamer'][2]:,} trades/s" if r["streamer"] else ""))
    return {"runs": runs, "log": merge_logs([r["log"] for r in runs])}


def merge_logs(logs):
    counts, lines = {}, []
    for c, u in logs:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
        lines += u
    return counts, lines


def throughput_once(args, base: Path, name: str) -> dict:
    res = {"hung": False}
    run = Run(name, base, args.tape, "max", "--exit-at-end", "--json", *args.filters, "--set", "rebuy_interval=0")
    try:
        run.start()
        began = time.monotonic()
        try:
            res["exit"] = run.wait_exit(args.throughput_timeout)
        except NotMeasured:
            res["hung"] = True  # keep what it has to say: stop it, then read its files
            res["exit"] = None
            run.stop()
        res["wall_s"] = time.monotonic() - began
    finally:
        run.close()
    res["log"] = log_problems(run)
    text = run.log_text()
    m = re.search(r"replay ended: (\d+) trades sent in ([\d.]+) s \((\d+) trades/s\)", text)
    res["streamer"] = (int(m.group(1)), float(m.group(2)), int(m.group(3))) if m else None
    lines = text.splitlines()
    streaming = next((log_time(l) for l in lines if "every consumer listens; streaming" in l), None)
    exited = next((log_time(l) for l in lines if re.search(r"streamer \(pid \d+\) exited with status 0", l)), None)
    res["streaming_to_exit_s"] = exited - streaming if streaming and exited and not res["hung"] else None
    res["trader_lost"] = sum(int(x) for x in re.findall(r"#\d+: lost (\d+) trades", text))
    res["leader_starts"] = len(re.findall(r"started leader-\S+ \(pid \d+", text))
    summary_path = run.run_dir / "summary.json"
    res["summary"] = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    try:
        res["printed"] = json.loads(run.out_path.read_text().strip().splitlines()[-1])
    except (ValueError, IndexError):
        res["printed"] = None
    stats_path = run.run_dir / "gateway-stats.json"
    res["latency"] = json.loads(stats_path.read_text())["latency_ns"] if stats_path.is_file() else []
    return res


# -- (c) kill -9 -> back up ------------------------------------------------------------------


def trader_title_ok(pid: int, label: str, leader_pid: int) -> bool:
    """pid is still that trader (its title) and a child of that leader: safe to kill."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
    return title.startswith(f"naive-mp: trader {label} ") and ppid == leader_pid


def tail_for(path: Path, offset: int, regex: re.Pattern, timeout: float) -> tuple[re.Match | None, float]:
    """Read `path` from `offset` every ~0.5 ms until `regex` matches; the match and when it was seen."""
    deadline = time.monotonic() + timeout
    buf = b""
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            chunk = f.read()
            if chunk:
                buf += chunk
                m = regex.search(buf.decode(errors="replace"))
                if m:
                    return m, time.monotonic()
            elif time.monotonic() > deadline:
                return None, time.monotonic()
            else:
                time.sleep(0.0005)


def stage_restart(args, base: Path) -> dict:
    res = {"kills": [], "failures": [], "skipped": 0}
    run = Run("restart", base, args.tape, str(args.restart_speed), *args.filters, "--set", "rebuy_interval=0")
    try:
        run.start()
        run.wait_log(r"every consumer listens; streaming", 60)
        deadline = time.monotonic() + 60
        st = run.status()
        while len(live_traders(st)) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
            st = run.status()
        res["traders_at_start"] = len(live_traders(st))
        if not live_traders(st):
            raise NotMeasured("no trader alive after 60 s")
        budget_end = time.monotonic() + args.kill_budget
        while len(res["kills"]) < args.kills and time.monotonic() < budget_end:
            st = run.status()
            leader = leader_of(st)
            if leader is None:
                time.sleep(0.2)
                continue
            now = time.time()
            old_enough = [p for p in live_traders(st) if now - p["started_at"] >= MIN_AGE_S]
            if not old_enough:
                time.sleep(0.2)
                continue
            victim = min(old_enough, key=lambda p: p["started_at"])  # spreads the kills over the traders
            outcome = kill_one(run, victim, leader["pid"])
            if outcome is None:
                res["skipped"] += 1
            elif "error" in outcome:
                res["failures"].append(outcome)
                progress(f"(c) kill {len(res['kills']) + len(res['failures'])}: {outcome['error']}")
                if len(res["failures"]) >= 5:
                    break
            else:
                res["kills"].append(outcome)
                if len(res["kills"]) % 10 == 0:
                    progress(f"(c) {len(res['kills'])} kills")
        st = run.status()
        res["memory"] = memory_of(st["processes"]) if st else None
        res["traders_at_end"] = len(live_traders(st))
        res["stop_s"] = run.stop()
    finally:
        run.close()
    expected = [r"\(pid \d+\) was killed by SIGKILL", r"died in \w+; restarting it from its cached state"]
    res["log"] = log_problems(run, expected)
    return res


def kill_one(run: Run, victim: dict, leader_pid: int) -> dict | None:
    """SIGKILL one trader, wait for its `back up` line, then for status to list its new pid."""
    label = f"{victim['symbol']}#{victim['trader_id']}"
    if not trader_title_ok(victim["pid"], label, leader_pid):
        return None  # it finished or changed since the status: pick again
    offset = run.log_path.stat().st_size
    regex = re.compile(rf"{re.escape(label)} back up \(pid (\d+)\), ([\d.]+) ms after its death was seen; "
                       r"restart (\d+)")
    killed_at = time.monotonic()
    try:
        os.kill(victim["pid"], signal.SIGKILL)
    except ProcessLookupError:
        return None
    m, seen_at = tail_for(run.log_path, offset, regex, timeout=10)
    if m is None:
        tail = run.log_path.read_bytes()[offset:].decode(errors="replace").splitlines()
        related = [l for l in tail if label in l][-4:]
        return {"label": label, "error": f"{label}: no 'back up' line within 10 s after kill -9; "
                                         f"its log lines since: {related}"}
    new_pid = int(m.group(1))
    ours_ms = (seen_at - killed_at) * 1e3
    evidence = []
    if ours_ms > SLOW_RESTART_MS:  # keep the story of a slow one: the run directory is usually deleted
        since = run.log_path.read_bytes()[offset:].decode(errors="replace").splitlines()
        evidence = [l for l in since if label in l or " WARNING " in l or " ERROR " in l or "CRITICAL" in l
                    or f"pid {new_pid}" in l or f" {new_pid}]" in l][:15]
    listed_at = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        st = run.status()
        if any(p["pid"] == new_pid for p in live_traders(st)):
            listed_at = time.monotonic()
            break
        time.sleep(0.1)
    return {"label": label, "old_pid": victim["pid"], "new_pid": new_pid, "ours_ms": ours_ms, "evidence": evidence,
            "leader_ms": float(m.group(2)), "restart": int(m.group(3)),
            "status_s": (listed_at - killed_at) if listed_at else None}


# -- report --------------------------------------------------------------------------------


def ms(ns_values, q) -> str:
    return f"{pct(ns_values, q) / 1e6:.3f}"


def fmt_mib(b) -> str:
    return f"{b / MIB:.2f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("OK" if ok else "MISS")


def code_version() -> str:
    """The commit measured, and whether naive_mp/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "naive_mp"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    if not dirty:
        return head or "?"
    diff = subprocess.run(["git", "diff", "HEAD", "--", "naive_mp"], cwd=ROOT, capture_output=True, timeout=10).stdout
    return f"{head or '?'} + {len(dirty.splitlines())} uncommitted file(s) in naive_mp/ (diff {zlib.crc32(diff):08x})"


def measured(result, rows: list, figure: str, target: str):
    """A stage's result, or None after saying it was skipped or could not be measured."""
    if result is None:
        print("    skipped (--only)")
    elif isinstance(result, str):
        print(f"    NOT MEASURED: {result}")
        rows.append((figure, "not measured", target, "n/a"))
    else:
        return result
    return None


def report_latency(args, results: dict, rows: list) -> None:
    """(a): the runtime's tick-to-order latency beside the bare relay."""
    a = results.get("a")
    print("\n(a) tick-to-order latency (gateway-stats.json), replay --speed "
          f"{args.latency_speed:g} for {args.duration:.0f} s, --set rebuy_interval=0"
          + "".join(f" --set {kv}" for kv in args.latency_set))
    a = measured(a, rows, "(a) latency p50 vs bare relay", "<= 2x relay p50")
    if a is None:
        return
    s = a["status"]
    print(f"    status --json polls (every {STATUS_EVERY_S:g} s): {s['polls']}, with 5 traders alive: "
          f"{s['with_5']}, most traders seen: "
          f"{s['max_traders']}, at the end: {s['at_end']}")
    lat, after = a["all"], a["after5"]
    print(f"    runtime, all orders      n={len(lat):5d}  p50 {ms(lat, 50)} ms  p99 {ms(lat, 99)} ms  "
          f"max {ms(lat, 100)} ms")
    if after:
        print(f"    runtime, once 5 traders  n={len(after):5d}  p50 {ms(after, 50)} ms  p99 {ms(after, 99)} ms  "
              f"max {ms(after, 100)} ms   (orders after the first status listing 5 traders)")
    by_side = a["by_side"]
    if isinstance(by_side, dict):
        for side, values in sorted(by_side.items()):
            hops = "streamer->trader->gateway" if side == "BUY" else \
                "streamer->gateway, fill->trader, order->gateway"
            print(f"      {side:4} orders           n={len(values):5d}  p50 {ms(values, 50)} ms  "
                  f"p99 {ms(values, 99)} ms   ({hops})")
    else:
        print(f"      by side: {by_side}")
    r = a["relay"]
    print(f"    bare relay A->B->C       n={len(r):5d}  p50 {ms(r, 50)} ms  p99 {ms(r, 99)} ms  "
          f"max {ms(r, 100)} ms   (gaps of the replay at that speed, capped at {args.relay_cap_ms:g} ms; "
          f"mean gap {sum(a['gaps']) / len(a['gaps']) * 1e3:.1f} ms)")
    rf = a.get("relay_fanout")
    if rf:
        print(f"    relay + {args.fanout} idle SUBs     n={len(rf):5d}  p50 {ms(rf, 50)} ms  p99 {ms(rf, 99)} ms  "
              f"max {ms(rf, 100)} ms   (context: every batch also wakes {args.fanout} more processes, as the "
              f"runtime's other traders, gateway and leader)")
    sample = after if len(after) >= 10 else lat
    if sample and r and s["max_traders"] >= 5:
        ratio50 = pct(sample, 50) / pct(r, 50)
        ratio99 = pct(sample, 99) / pct(r, 99)
        print(f"    ratio runtime/relay      p50 {ratio50:.2f}x  p99 {ratio99:.2f}x")
        rows.append(("(a) tick-to-order p50 / p99", f"{ms(sample, 50)} / {ms(sample, 99)} ms (n={len(sample)})",
                     "", ""))
        rows.append(("    bare 2-hop relay p50 / p99", f"{ms(r, 50)} / {ms(r, 99)} ms (n={len(r)})", "", ""))
        rows.append(("    ratio p50", f"{ratio50:.2f}x", "<= 2x", verdict(ratio50 <= 2)))
        buys = by_side.get("BUY") if isinstance(by_side, dict) else None
        if buys:
            rows.append(("    (BUY orders only: the relay's 2 hops)", f"p50 {ms(buys, 50)} ms -> ratio "
                         f"{pct(buys, 50) / pct(r, 50):.2f}x (n={len(buys)})", "(context)", ""))
        if rf:
            rows.append((f"    (relay + {args.fanout} idle SUBs p50)", f"{ms(rf, 50)} ms -> ratio "
                         f"{pct(sample, 50) / pct(rf, 50):.2f}x", "(context)", ""))
        if len(sample) < 50:
            rows.append(("    (few orders: p99 is rough)", f"n={len(sample)}", "", ""))
    else:
        why = "5 traders never alive" if s["max_traders"] < 5 else "no orders"
        rows.append(("(a) latency p50 vs bare relay", f"not measured ({why})", "<= 2x relay p50", "n/a"))


def report_throughput(args, results: dict, rows: list) -> None:
    """(b): events/s at --speed max, and losses."""
    b = results.get("b")
    print(f"\n(b) throughput: --speed max --exit-at-end --set rebuy_interval=0, whole tape, "
          f"{args.throughput_runs} run(s)")
    b = measured(b, rows, "(b) throughput", ">= 100,000 ev/s, 0 lost")
    if b is None:
        return
    rates, e2es, losts, bad, few = [], [], [], [], []
    for i, r in enumerate(b["runs"], 1):
        summ = r["printed"] or r["summary"] or {}
        events, lost = summ.get("events"), summ.get("lost_events")
        how = (f"DID NOT EXIT by itself within {args.throughput_timeout:.0f} s (stopped)" if r["hung"]
               else f"exit {r['exit']}")
        parts = [f"run {i}: {how}",
                 f"events {events}", f"lost_events {lost}", f"trader-side lost {r['trader_lost']}",
                 f"max_traders {summ.get('max_traders')}", f"leader starts {r['leader_starts']}"]
        print("    " + ", ".join(parts))
        if r["streamer"]:
            n, secs, rate = r["streamer"]
            rates.append(rate)
            print(f"      streamer log: {n} trades sent in {secs:.3f} s = {rate:,} trades/s")
        else:
            print("      streamer log: no 'replay ended' line")
        if events and r["streaming_to_exit_s"]:
            e2e = events / r["streaming_to_exit_s"]
            e2es.append(e2e)
            print(f"      'streaming' -> streamer exit (it exits once every consumer acked the end of the "
                  f"stream): {r['streaming_to_exit_s']:.3f} s = {e2e:,.0f} ev/s")
        if events:
            print(f"      whole command (start-up, replay, drain, stop): {r['wall_s']:.2f} s = "
                  f"{events / r['wall_s']:,.0f} ev/s")
        if r["latency"]:
            print(f"      tick-to-order during it: n={len(r['latency'])} p50 {ms(r['latency'], 50)} ms, "
                  f"max {ms(r['latency'], 100)} ms (how far traders+gateway ran behind the streamer)")
        losts.append(lost)
        if r["hung"] or r["exit"] != 0 or lost != 0 or r["trader_lost"]:
            bad.append(i)
        if (summ.get("max_traders") or 0) < 5:
            few.append(f"{i} ({summ.get('max_traders')})")
    if rates and all(x is not None for x in losts):
        rate = median(rates)
        ok = rate >= 100_000 and not bad
        rows.append(("(b) streamer rate (median) / lost", f"{rate:,.0f} ev/s / {sum(losts)} lost",
                     ">= 100,000 ev/s, 0 lost", verdict(ok)))
        if bad:
            rows.append(("    runs hung, failed or lost events", ", ".join(map(str, bad)), "none", "MISS"))
        if e2es:
            e2e = median(e2es)
            rows.append(("    streaming -> all acked end", f"{e2e:,.0f} ev/s (median)", ">= 100,000 ev/s",
                         verdict(e2e >= 100_000 and not bad)))
        if few:
            rows.append(("    (runs with < 5 traders at once)", ", ".join(few), "", "note"))
    else:
        rows.append(("(b) throughput", "not measured (no streamer line or summary)", ">= 100,000 ev/s", "n/a"))


def report_restart(args, results: dict, rows: list) -> None:
    """(c): kill -9 -> back up."""
    c = results.get("c")
    print(f"\n(c) kill -9 of a trader -> replacement back up, replay --speed {args.restart_speed:g}, "
          f"only traders up >= {MIN_AGE_S:g} s (a death before the hello is a boot failure: back-off by design)")
    c = measured(c, rows, "(c) restart p50 / p99", "<= 20 / <= 100 ms")
    if c is None:
        return
    kills = c["kills"]
    ours = [k["ours_ms"] for k in kills]
    theirs = [k["leader_ms"] for k in kills]
    per = {}
    for k in kills:
        per[k["label"]] = per.get(k["label"], 0) + 1
    print(f"    traders alive at start {c['traders_at_start']}, at end {c['traders_at_end']}; "
          f"kills {len(kills)} (asked {args.kills}), failed {len(c['failures'])}, re-picked {c['skipped']}")
    print(f"    kills per trader: {', '.join(f'{k} {v}' for k, v in sorted(per.items()))}")
    if kills:
        print(f"    kill -> 'back up' line seen (our clock)   p50 {median(ours):.1f} ms  "
              f"p99 {pct(ours, 99):.1f} ms  "
              f"min {min(ours):.1f}  max {max(ours):.1f}")
        print(f"    leader's own (death reaped -> hello)      p50 {median(theirs):.1f} ms  "
              f"p99 {pct(theirs, 99):.1f} ms  "
              f"min {min(theirs):.1f}  max {max(theirs):.1f}")
        gap = [k["ours_ms"] - k["leader_ms"] for k in kills]
        print(f"    difference (kill -> leader reaps, + our 0.5 ms log polling) p50 {median(gap):.1f} ms  "
              f"max {max(gap):.1f} ms")
        listed = [k["status_s"] for k in kills if k["status_s"] is not None]
        if listed:
            print(f"    kill -> new pid in status --json          p50 {median(listed) * 1e3:.0f} ms  "
                  f"max {max(listed) * 1e3:.0f} ms  (heartbeat-bound)")
        print("    slowest: " + "; ".join(f"{k['label']} {k['ours_ms']:.1f} ms (leader {k['leader_ms']:.1f})"
                                       for k in sorted(kills, key=lambda k: -k["ours_ms"])[:3]))
    for k in kills:
        if k["evidence"]:
            print(f"    slow restart of {k['label']} ({k['ours_ms']:.0f} ms): its log lines since the kill:")
            for line in k["evidence"]:
                print(f"      {line[:200]}")
    for f in c["failures"]:
        print(f"    FAILED: {f['error']}")
    if len(kills) >= 2:
        p50, p99 = median(ours), pct(ours, 99)
        rows.append(("(c) restart p50 / p99", f"{p50:.1f} / {p99:.1f} ms (n={len(kills)})", "<= 20 / <= 100 ms",
                     verdict(p50 <= 20 and p99 <= 100 and not c["failures"])))
    else:
        rows.append(("(c) restart p50 / p99", "not measured (fewer than 2 kills)", "<= 20 / <= 100 ms", "n/a"))


def report_memory(args, results: dict, rows: list) -> None:
    """(d): USS of traders and leader beside the idle interpreter."""
    print("\n(d) private memory, USS = Private_Clean + Private_Dirty (smaps_rollup), MiB")
    a, c, y = results.get("a"), results.get("c"), results.get("y")
    mems = [("in (a), after the paced replay", a.get("memory") if isinstance(a, dict) else None),
            ("in (c), after the kills (restarted traders)", c.get("memory") if isinstance(c, dict) else None)]
    measured = []
    for where, mem in mems:
        if not mem or not mem["traders"]:
            print(f"    traders {where}: not measured")
            continue
        u = [t["uss"] for t in mem["traders"]]
        measured += u
        p = [t["pss"] for t in mem["traders"]]
        print(f"    traders {where}: n={len(u)}  USS min {fmt_mib(min(u))}  median {fmt_mib(median(u))}  "
              f"max {fmt_mib(max(u))}   (PSS median {fmt_mib(median(p))}, RSS median "
              f"{fmt_mib(median([t['rss'] for t in mem['traders']]))})")
        if mem["leader"]:
            ld = mem["leader"]
            print(f"    leader {where}: USS {fmt_mib(ld['uss'])}  PSS {fmt_mib(ld['pss'])}  RSS {fmt_mib(ld['rss'])}")
    if y is None:
        print("    idle python yardstick: skipped (--only)")
    elif isinstance(y, dict):
        print(f"    idle python -c 'import zmq, msgspec, time; time.sleep(5)': USS {fmt_mib(y['uss'])}  "
              f"PSS {fmt_mib(y['pss'])}  RSS {fmt_mib(y['rss'])}")
    else:
        print(f"    idle python yardstick: NOT MEASURED: {y}")
    if measured:
        u = measured
        rows.append(("(d) trader USS min/med/max", f"{fmt_mib(min(u))} / {fmt_mib(median(u))} / {fmt_mib(max(u))} MiB",
                     "<= 5 MiB each", verdict(max(u) <= 5 * MIB)))
        if isinstance(y, dict):
            rows.append(("    idle python yardstick USS", f"{fmt_mib(y['uss'])} MiB", "", ""))
    else:
        rows.append(("(d) trader USS", "not measured", "<= 5 MiB each", "n/a"))


def report_logs(args, results: dict, rows: list) -> None:
    """WARNING/ERROR/CRITICAL lines of each run, less the ones a stage causes on purpose."""
    print("\nlog problems (WARNING/ERROR/CRITICAL lines in each run's naive-mp.log; expected kill lines left out)")
    for key, name in (("a", "latency"), ("b", "throughput (all runs)"), ("c", "restart")):
        r = results.get(key)
        if not isinstance(r, dict) or "log" not in r:
            continue
        counts, unexpected = r["log"]
        print(f"    {name}: {counts or 'none'}; unexpected lines: {len(unexpected)}")
        for line in unexpected[:8]:
            print(f"      {line[:220]}")
        if len(unexpected) > 8:
            print(f"      ... {len(unexpected) - 8} more")


def report(args, results: dict, elapsed: float) -> None:
    rows: list = []  # (figure, measured, target, verdict)
    print()
    print(f"naive-mp runtime bench: tape {args.tape.name}; {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {elapsed:.0f} s in all")
    now = code_version()
    print(f"code measured: {args.code_at_start}" + ("" if now == args.code_at_start else
                                                     f"; CHANGED during the bench, now {now}"))

    for section in (report_latency, report_throughput, report_restart, report_memory, report_logs):
        section(args, results, rows)
    print("\nsummary")
    w = [max(len(r[i]) for r in rows + [("figure", "measured", "target", "")]) for i in range(4)]
    print(f"  {'figure':<{w[0]}}  {'measured':<{w[1]}}  {'target':<{w[2]}}  verdict")
    for r in rows:
        print(f"  {r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")


# -- main -----------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tape", nargs="?", type=Path, default=DEFAULT_TAPE)
    parser.add_argument("--tick-size", default="0.00001")
    parser.add_argument("--step-size", default="0.1")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer relay messages and kills")
    parser.add_argument("--kills", type=int, help="kill -9 count for (c) (default 50, 15 with --quick)")
    parser.add_argument("--latency-speed", type=float, default=50.0, help="replay speed for (a)")
    parser.add_argument("--restart-speed", type=float, default=20.0, help="replay speed for (c)")
    parser.add_argument("--duration", type=float, help="seconds of replay for (a) (default 30, 15 with --quick)")
    parser.add_argument("--latency-set", action="append", metavar="KEY=VALUE",
                        help="more settings for (a), after rebuy_interval=0 (repeatable; 'none' for none). "
                             "Default profit_target=-0.002: sells at about the buy price, so traders complete "
                             "cycles and keep placing orders (the book's values place ~16 orders in 30 s here)")
    parser.add_argument("--fanout", type=int, default=6,
                        help="extra idle SUBs for the context relay run (0: skip it); default 6 = 4 more traders, "
                             "the gateway and the leader")
    parser.add_argument("--relay-messages", type=int, help="bare relay messages (default 3000, 800 with --quick)")
    parser.add_argument("--relay-cap-ms", type=float, default=10.0, help="longest gap between relay messages")
    parser.add_argument("--throughput-runs", type=int, help="runs of (b) (default 3, 1 with --quick)")
    parser.add_argument("--only", default="abcd", help="stages to run, e.g. 'ac' (d needs a or c)")
    parser.add_argument("--keep", action="store_true", help="keep the run directories (path printed)")
    args = parser.parse_args(argv)
    args.tape = args.tape.resolve()
    if args.latency_set is None:
        args.latency_set = ["profit_target=-0.002"]
    args.latency_set = [kv for kv in args.latency_set if kv.lower() != "none"]
    args.kills = args.kills if args.kills is not None else (15 if args.quick else 50)
    args.duration = args.duration or (15.0 if args.quick else 30.0)
    args.relay_messages = args.relay_messages or (800 if args.quick else 3000)
    args.kill_budget = max(120.0, args.kills * 4.0)
    args.throughput_runs = args.throughput_runs or (1 if args.quick else 3)
    args.throughput_timeout = 60.0
    args.filters = ["--tick-size", args.tick_size, "--step-size", args.step_size]
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.tape.is_file():
        print(f"no tape at {args.tape}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    args.code_at_start = code_version()
    base = Path(tempfile.mkdtemp(prefix="nmp-bench-"))
    began = time.monotonic()
    results: dict = {}
    stages = [("a", "tick-to-order latency + bare relay", stage_latency),
              ("b", "throughput at --speed max", stage_throughput),
              ("c", f"{args.kills} kill -9 restarts", stage_restart)]
    try:
        for key, what, fn in stages:
            if key not in args.only:
                continue
            progress(f"({key}) {what} ...")
            try:
                results[key] = fn(args, base)
            except NotMeasured as exc:
                results[key] = str(exc)
                progress(f"({key}) not measured: {exc}")
        if "d" in args.only:
            progress("(d) idle python yardstick ...")
            try:
                results["y"] = yardstick_uss()
            except (NotMeasured, OSError) as exc:
                results["y"] = str(exc)
        report(args, results, time.monotonic() - began)
        return 0
    except KeyboardInterrupt:
        progress("interrupted: everything started has been stopped")
        return 130
    finally:
        if args.keep:
            progress(f"run directories kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
