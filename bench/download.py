"""`naive-mp download` against a local fake archive serving the real 2019 tapes: prints its figures.

    .venv/bin/python bench/download.py [--rounds N]

Everything stays on 127.0.0.1 (the tests' fake archive, tests/data/archive_server.py).
Measured, each as the whole CLI in a subprocess (interpreter start included)
and as Archive.download in-process:

* first download of two XRPUSDT days (2.5 MB), checksums verified;
* the same command again: both days already present (only .CHECKSUM asked);
* a transfer cut at half the file, resumed with a Range request;
* `naive-mp backtest` of a downloaded day gives the original tape's events.
"""

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAPES = ROOT.parent / "shared" / "data" / "tapes"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "data"))
from archive_server import FakeArchive  # noqa: E402  (the tests' fake archive)

from naive_mp.data.download import Archive  # noqa: E402

DAYS = ["2019-05-26", "2019-06-01"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1")


def cli(*args) -> tuple[float, subprocess.CompletedProcess]:
    """Run naive-mp from a neutral folder (so this checkout's code runs); (seconds, result)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "naive_mp", *args], capture_output=True, text=True,
                          env=ENV, cwd=tempfile.gettempdir(), timeout=300)
    if proc.returncode:
        raise SystemExit(f"naive-mp {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return time.perf_counter() - start, proc


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="repeats of each figure (median shown)")
    rounds = parser.parse_args().rounds
    if not TAPES.exists():
        raise SystemExit(f"needs the real tapes in {TAPES}")
    with FakeArchive() as server:
        paths = {day: server.publish("XRPUSDT", day, (TAPES / f"XRPUSDT-trades-{day}.zip").read_bytes())
                 for day in DAYS}
        size = sum(len(server.files[p]) for p in paths.values())
        print(f"two XRPUSDT days, {size / 1e6:.2f} MB, from a fake archive on 127.0.0.1, median of {rounds}")
        cli_figures(server, rounds)
        library_figures(server, paths, size, rounds)


def cli_figures(server, rounds):
    """The command as a user runs it."""
    first, again = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            args = ["download", "XRPUSDT", *DAYS, "--dir", folder, "--base-url", server.url]
            first.append(cli(*args)[0])
            seconds, proc = cli(*args)
            again.append(seconds)
            assert proc.stdout.count("already present") == 2, proc.stdout
        events = backtest_events(server)
    print(f"  CLI, first download:      {statistics.median(first):.3f} s")
    print(f"  CLI, again (present):     {statistics.median(again):.3f} s  (no zip requested)")
    print(f"  CLI, `naive-mp --help`:   {statistics.median(cli('--help')[0] for _ in range(rounds)):.3f} s  (start-up alone)")
    print(f"  backtest of the downloaded 2019-06-01: {events:,} events (the original tape has 117,859)")


def backtest_events(server) -> int:
    with tempfile.TemporaryDirectory() as folder:
        cli("download", "XRPUSDT", DAYS[1], "--dir", folder, "--base-url", server.url, "-q")
        tape = str(Path(folder) / f"XRPUSDT-trades-{DAYS[1]}.zip")
        _, proc = cli("backtest", tape, "--tick-size", "0.00001", "--step-size", "0.1", "--json")
        return json.loads(proc.stdout)["events"]


def library_figures(server, paths, size, rounds):
    """Archive.download in-process: the transfer, the check and the rename, without start-up."""
    archive = Archive(base_url=server.url)
    days = [dt.date.fromisoformat(day) for day in DAYS]
    fresh, present, resumed = [], [], []
    big = paths[DAYS[1]]
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            fresh.append(timed(lambda: [archive.download("XRPUSDT", d, folder) for d in days]))
            present.append(timed(lambda: [archive.download("XRPUSDT", d, folder) for d in days]))
        with tempfile.TemporaryDirectory() as folder:
            server.faults[big] = [("cut", len(server.files[big]) // 2)]
            before = len(server.log)
            resumed.append(timed(lambda: archive.download("XRPUSDT", days[1], folder)))
            ranges = [rng for _, path, rng in server.log[before:] if path == big]
            assert ranges[0] is None and ranges[1].startswith("bytes="), ranges
    print(f"  in-process, download:     {statistics.median(fresh) * 1e3:.1f} ms  "
          f"({size / 1e6 / statistics.median(fresh):.0f} MB/s incl. SHA-256 and fsync)")
    print(f"  in-process, present:      {statistics.median(present) * 1e3:.1f} ms  (.CHECKSUM request + SHA-256)")
    print(f"  in-process, cut at 50% and resumed (2019-06-01): {statistics.median(resumed) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
