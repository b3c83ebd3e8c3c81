"""`naive-mp settings show|set|history` and `naive-mp reload`: per-symbol settings in the store."""

import json
import time

import click
import msgspec

from naive_mp.commands.status import run_dir_option
from naive_mp.commands.store_access import tell_leaders, using_store
from naive_mp.core.settings import SettingError
from naive_mp.store.records import setting_text


@click.group()
def settings():
    """Per-symbol strategy settings kept in the run directory (seeded by `start`)."""


@settings.command("show")
@click.argument("symbol", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@run_dir_option
def show(symbol, as_json, run_dir):
    """Each symbol's settings and exchange filters (or SYMBOL's)."""
    with using_store(run_dir, readonly=True) as store:
        found = store.settings()
    if symbol:
        symbol = symbol.upper()
        if symbol not in found:
            raise click.ClickException(f"{symbol}: this run does not trade it (symbols: {', '.join(found)})")
        found = {symbol: found[symbol]}
    data = {s: {"settings": _texts(st), "filters": _texts(f)} for s, (st, f) in found.items()}
    if as_json:
        click.echo(json.dumps(data))
        return
    for name, tables in data.items():
        click.echo(f"[symbols.{name}]")
        for key, value in {**tables["settings"], **tables["filters"]}.items():
            click.echo(f"{key} = \"{value}\"")


def _texts(struct) -> dict[str, str]:
    return {k: setting_text(v) for k, v in msgspec.structs.asdict(struct).items()}


@settings.command("set")
@click.argument("symbol")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("-q", "--quiet", is_flag=True, help="Say nothing unless it fails.")
@click.option("--allow-loss", is_flag=True, help="On a run with real orders: accept a profit_target <= 0.")
@run_dir_option
def set_(symbol, pairs, quiet, allow_loss, run_dir):
    """Change SYMBOL's settings; the traders started after `naive-mp reload` use them."""
    symbol = symbol.upper()
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="KEY=VALUE")
        values[key.strip()] = value.strip()
    with using_store(run_dir) as store:
        run = store.run()
        real = run is not None and run.command.orders != "paper"

        def refuse(new) -> tuple[str, str] | None:
            if real and not allow_loss and new.profit_target <= 0:
                return "profit_target", (f"{new.profit_target:f} loses money on every cycle, and this run places "
                                         "real orders: add --allow-loss to mean it")
            return None
        try:
            changes = store.change_settings(symbol, values, source="settings set", refuse=refuse)
        except SettingError as exc:
            raise click.BadParameter(str(exc), param_hint="KEY=VALUE") from None
    if quiet:
        return
    for change in changes:
        click.echo(f"{symbol} {change.key}: {change.old} -> {change.new}")
    if not changes:
        click.echo(f"{symbol}: nothing changed")
    else:
        click.echo("applies to traders started after `naive-mp reload` (or the next start)")


@settings.command("history")
@click.argument("symbol", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@run_dir_option
def history(symbol, as_json, run_dir):
    """Every settings change of the run, oldest first, with its time and source."""
    with using_store(run_dir, readonly=True) as store:
        changes = store.settings_history(symbol.upper() if symbol else None)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(changes)))
        return
    for c in changes:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.at))
        click.echo(f"{when}  {c.symbol}  {c.key}: {c.old if c.old is not None else '-'} -> {c.new}  ({c.source})")


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Say nothing unless it fails.")
@run_dir_option
def reload(quiet, run_dir):
    """Running leaders take the stored settings for the traders they start from now on (as SIGHUP)."""
    told = tell_leaders(run_dir, "settings")
    if told is None:
        raise click.ClickException(f"no naive-mp supervisor is running on {run_dir}; "
                                   "stored settings apply at the next start")
    if not quiet:
        click.echo(f"reloaded settings in {told} leader{'s' * (told != 1)}")
