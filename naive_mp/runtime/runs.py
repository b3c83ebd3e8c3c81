"""One run per run directory: begin a new run, resume the unfinished one, or refuse.

Called by `start` while it holds the run directory's lock, before any child
starts. The run's identity is its command (`RunCommand`): the same command
resumes an unfinished run; another is refused, naming the run, unless
`--fresh` archives it first. A finished replay is archived and a new run begins.
"""

import logging
import time
from pathlib import Path

from naive_mp.runtime.rundir import RunDirError
from naive_mp.store import RunCommand, RunRecord, Store, StoreError, archive
from naive_mp.wire import RunSpec

log = logging.getLogger("naive_mp.supervisor")


def command_of(spec: RunSpec) -> RunCommand:
    return RunCommand(kind="replay" if spec.replay else "live", symbols=list(spec.symbols),
                      tapes=list(spec.replay), lockstep=spec.lockstep,
                      settings=dict(spec.settings), filters=dict(spec.filters),
                      orders=("testnet" if spec.testnet else "live") if spec.live else "paper")


def open_run(run_dir: Path, spec: RunSpec, fresh: bool) -> RunRecord:
    """The run `spec` continues or begins in `run_dir`, its store ready for the children."""
    command = command_of(spec)
    try:
        store = Store(run_dir, create=True)
        try:
            store.validate()
            run = store.run()
            if run is not None:
                run = _resume_or_archive(store, run, command, fresh)
            if run is None:
                run = RunRecord(run_id=time.time_ns(), command=command, started_at=time.time())
                store.begin_run(run)
                log.info("new run in %s: %s", run_dir, command.describe())
            return run
        finally:
            store.close()
    except StoreError as exc:
        raise RunDirError(str(exc)) from None


def _resume_or_archive(store: Store, run: RunRecord, command: RunCommand, fresh: bool) -> RunRecord | None:
    """`run` when it resumes; None once archived (the caller's store is then closed and reopened)."""
    position = store.position()
    finished = position is not None and position.ended
    if finished or fresh:
        store.close()
        path = archive(store.path.parent, run)
        log.info("archived %s %s to %s", "the finished" if finished else "the unfinished",
                 run.describe().removeprefix("the "), path)
        store.__init__(store.path.parent, create=True)
        return None
    changes = run.command.differences(command)
    if changes:
        raise RunDirError(
            f"{store.path.parent} holds an unfinished run, {run.describe()}; this command differs "
            f"({'; '.join(changes)}). Run the same command to resume it, or add --fresh to archive it "
            "and start a new run")
    log.info("resuming %s", run.describe())
    return run
