"""`naive-mp start` with test-only knobs the command line does not offer; run by tree.Tree(knobs=...).

    python start_with.py '{"spec": {"trader_stale_s": 2}, "boot_fails": [1]}' start --run-dir DIR ...

"spec": RunSpec fields to set (a low trader_stale_s, say). "boot_fails": trader ids whose
every process crashes before its Hello. The tree is forked, never exec'd, from this
process: what is patched here holds in every process of it.
"""

import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's naive_mp, as `-m` from its root

from naive_mp.cli import main  # noqa: E402
from naive_mp.commands import start  # noqa: E402
from naive_mp.runtime import trader  # noqa: E402


def apply(knobs: dict) -> None:
    start.RunSpec = functools.partial(start.RunSpec, **knobs.get("spec", {}))
    failing = set(knobs.get("boot_fails", ()))
    warm_up = trader.TraderProcess._warm_up  # the last step before the Hello

    def warm_up_or_crash(self):
        if self.state.trader_id in failing:
            raise RuntimeError(f"{self.state.label} cannot boot (test)")
        warm_up(self)
    trader.TraderProcess._warm_up = warm_up_or_crash


if __name__ == "__main__":
    apply(json.loads(sys.argv[1]))
    main(sys.argv[2:], prog_name="naive-mp")
