"""etc/naive-mp.service: what it runs is a valid `naive-mp start`, and its stop lets the supervisor stop its tree."""

import configparser
import shlex
from pathlib import Path

from naive_mp.cli import main

UNIT = Path(__file__).resolve().parents[1] / "etc" / "naive-mp.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_exec_start_is_a_start_command_the_cli_accepts():
    argv = shlex.split(unit()["Service"]["ExecStart"])
    assert argv[0].endswith("/naive-mp") and argv[1] == "start"
    command = main.get_command(None, "start")
    ctx = command.make_context("start", argv[2:])  # raises on an unknown flag or a bad value
    assert ctx.params["run_dir"] is not None and ctx.params["log_format"] == "json"


def test_stopping_sends_sigterm_to_the_supervisor_only_and_failures_restart():
    service = unit()["Service"]
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure" and service["StandardError"] == "journal"
