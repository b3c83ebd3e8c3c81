"""Opening the run directory's state store from a command, with errors a person can act on."""

import contextlib
from pathlib import Path

import click

from naive_mp.runtime.control import NotRunning, ask
from naive_mp.store import Store, StoreError, db_path
from naive_mp.wire import ReloadRequest, WireError


def open_store(run_dir: Path, readonly: bool = False) -> Store:
    """The run's store, or a click error (exit 1) saying there is no run there or what is wrong."""
    if not db_path(run_dir).exists():
        raise click.ClickException(f"no run in {run_dir}: start one with `naive-mp start --run-dir {run_dir} ...`")
    try:
        return Store(run_dir, readonly=readonly)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def using_store(run_dir: Path, readonly: bool = False):
    """The run's store for one command: closed after, its errors as click errors (exit 1)."""
    store = open_store(run_dir, readonly=readonly)
    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def tell_leaders(run_dir: Path, what: str) -> int | None:
    """Have the running leaders reload `what`; their count, or None when nothing runs."""
    try:
        return ask(run_dir, ReloadRequest(what=what)).leaders
    except NotRunning:
        return None
    except WireError as exc:
        raise click.ClickException(f"the supervisor on {run_dir} gave a garbled answer: {exc}") from None
