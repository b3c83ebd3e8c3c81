"""`naive-mp stop`: ask the supervisor to stop everything cleanly, and wait for it."""

import os
import time

import click

from naive_mp.commands.status import ask_or_fail, run_dir_option
from naive_mp.runtime.rundir import log_path
from naive_mp.wire import StopRequest


@click.command()
@click.option("--timeout", default=30.0, show_default=True, metavar="S",
              help="Seconds to wait for the whole system to stop.")
@click.option("-q", "--quiet", is_flag=True, help="Say nothing unless it fails.")
@run_dir_option
def stop(timeout, quiet, run_dir):
    """Stop the running system cleanly (the same path as SIGTERM) and wait until it is gone."""
    reply = ask_or_fail(run_dir, StopRequest())
    if not quiet:
        click.echo(f"stopping naive-mp (supervisor pid {reply.pid}) on {run_dir} ...", err=True)
    if not wait_gone(reply.pid, timeout):
        raise click.ClickException(
            f"the supervisor (pid {reply.pid}) still runs after {timeout:g} s; "
            f"see {log_path(run_dir)}, or end it with `kill {reply.pid}`")
    if not quiet:
        click.echo(f"stopped naive-mp on {run_dir}")


def wait_gone(pid: int, timeout_s: float) -> bool:
    """True once process `pid` is gone (or a zombie: it has finished), False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # finished, waiting for its parent to reap it
