"""`naive-mp status`: every process of the running system, as its supervisor sees it."""

import json
import shutil
import time
from pathlib import Path

import click
import msgspec

from naive_mp.runtime.control import NotRunning, ask
from naive_mp.runtime.rundir import default_run_dir
from naive_mp.wire import ProcessInfo, StatusReply, StatusRequest, WireError

COLUMNS = ("ROLE", "SYMBOL", "TRADER", "PID", "STATE", "ORDERS", "RESTARTS", "UPTIME")


def run_dir_option(command):
    """--run-dir DIR (env NAIVE_MP_RUN_DIR), shared by start, stop and status."""
    return click.option(
        "--run-dir", type=click.Path(file_okay=False, path_type=Path), envvar="NAIVE_MP_RUN_DIR",
        show_envvar=True, callback=lambda ctx, param, value: value or default_run_dir(),
        help="Where sockets, the pid file and logs live "
             "(default: $XDG_RUNTIME_DIR/naive-mp, else ~/.local/state/naive-mp/run).",
    )(command)


def ask_or_fail(run_dir: Path, message):
    """The supervisor's reply, or a click error saying nothing runs there."""
    try:
        return ask(run_dir, message)
    except NotRunning as exc:
        raise click.ClickException(str(exc)) from None
    except WireError as exc:
        raise click.ClickException(f"the supervisor on {run_dir} gave a garbled answer: {exc}") from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--watch", is_flag=True, help="Keep the view on screen, refreshed, until Ctrl-C or the run stops.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between refreshes with --watch.")
@click.option("-q", "--quiet", is_flag=True, help="The table alone, without its heading line.")
@run_dir_option
def status(as_json, watch, interval, quiet, run_dir):
    """Show every process of the running system: role, symbol, trader, pid, state, orders, restarts, uptime."""
    if watch:
        if as_json:
            raise click.UsageError("--watch shows a table; use --json without it")
        raise SystemExit(watch_status(run_dir, interval))
    reply = ask_or_fail(run_dir, StatusRequest())
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins({"supervisor": reply.supervisor, "processes": reply.processes})))
    else:
        table = status_table(reply, run_dir)
        click.echo(table.split("\n", 1)[1] if quiet else table)


def status_table(reply: StatusReply, run_dir: Path, width: int | None = None) -> str:
    """Aligned columns, one line per process, the supervisor first; the STATE column cut to fit `width`."""
    now = time.time()
    rows = [COLUMNS] + [_row(p, now) for p in [reply.supervisor, *reply.processes]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    state = COLUMNS.index("STATE")
    if width is not None:  # every other column is short: the state gives way
        others = sum(widths) - widths[state] + 2 * (len(COLUMNS) - 1)
        widths[state] = max(8, min(widths[state], width - others))
    lines = ["  ".join(_fit(cell, w).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    header = f"naive-mp on {run_dir}: {len(reply.processes) + 1} processes"
    if width is not None and len(header) > width:  # a long run dir loses its start, not the count
        header = "…" + header[len(header) - width + 1:]
    return header + "\n" + "\n".join(lines)


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[:width - 1] + "…"


def watch_status(run_dir: Path, interval: float) -> int:
    """Redraw the status every `interval` s; 0 once a run seen here stops, 1 if none ever answered."""
    seen = False
    try:
        while True:
            try:
                reply = ask(run_dir, StatusRequest())
            except (NotRunning, WireError) as exc:
                click.echo(f"\n{'the run stopped: ' if seen else ''}{exc}", err=True)
                return 0 if seen else 1
            seen = True
            columns = shutil.get_terminal_size((80, 24)).columns
            stamp = time.strftime("%H:%M:%S")
            click.clear()
            click.echo(f"{stamp}  every {interval:g} s, Ctrl-C to leave\n" + status_table(reply, run_dir, columns))
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _row(p: ProcessInfo, now: float) -> tuple[str, ...]:
    return (p.role, p.symbol or "-", "-" if p.trader_id is None else f"#{p.trader_id}", str(p.pid),
            p.state or "-", str(p.orders), str(p.restarts), uptime(now - p.started_at) if p.started_at else "-")


def uptime(seconds: float) -> str:
    """42s, 3m07s, 2h05m, 3d04h."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
