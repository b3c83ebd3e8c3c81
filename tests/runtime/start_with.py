"""`naive-mp start` with test-only knobs the command line does not offer; run by tree.Tree(knobs=...).

    python start_with.py '{"spec": {"trader_stale_s": 2}, "boot_fails": [1]}' start --run-dir DIR ...

"spec": RunSpec fields to set (a low trader_stale_s, say; "live_timing" as a dict). "boot_fails": trader ids whose
every process crashes before its Hello. "hang_on_fill": trader ids whose first process
hangs (silent, alive) when told of a fill. The tree is forked, never exec'd, from this
process: what is patched here holds in every process of it.
"""

import functools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's naive_mp, as `-m` from its root

from naive_mp.cli import main  # noqa: E402
from naive_mp.commands import start  # noqa: E402
from naive_mp.runtime import trader  # noqa: E402
from naive_mp.wire import LiveTiming  # noqa: E402


def apply(knobs: dict) -> None:
    spec = dict(knobs.get("spec", {}))
    if "live_timing" in spec:  # a nested Struct: given as a dict
        spec["live_timing"] = LiveTiming(**spec["live_timing"])
    start.RunSpec = functools.partial(start.RunSpec, **spec)
    crash_at_boot(set(knobs.get("boot_fails", ())))
    hang_on_fill(set(knobs.get("hang_on_fill", ())))


def crash_at_boot(failing: set[int]) -> None:
    warm_up = trader.TraderProcess._warm_up  # the last step before the Hello

    def warm_up_or_crash(self):
        if self.state.trader_id in failing:
            raise RuntimeError(f"{self.state.label} cannot boot (test)")
        warm_up(self)
    trader.TraderProcess._warm_up = warm_up_or_crash


def hang_on_fill(hanging: set[int]) -> None:
    on_fill = trader.TraderProcess._on_fill

    def on_fill_or_hang(self, fill):
        marker = Path(self.spec.run_dir, f"hung-{self.state.trader_id}")  # only its first process hangs
        if self.state.trader_id in hanging and not marker.exists():
            marker.touch()
            while True:
                time.sleep(1)
        on_fill(self, fill)
    trader.TraderProcess._on_fill = on_fill_or_hang


if __name__ == "__main__":
    apply(json.loads(sys.argv[1]))
    main(sys.argv[2:], prog_name="naive-mp")
