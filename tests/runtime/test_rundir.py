"""The run directory is refused unless it is ours and private, nothing in it is followed, and
only our own sockets are ever removed from it.

The supervisor runs as supervisor_app.py (dummy children; the "end" scenario stops by
itself), the `start` command as the CLI; both in subprocesses.
"""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from naive_mp.runtime.rundir import RunDirError, prepare_run_dir, remove_sockets
from tree import Tree, write_tape

APP = Path(__file__).with_name("supervisor_app.py")
NOBODY = 65534


def supervise(run_dir: Path, scenario: str = "end") -> subprocess.CompletedProcess:
    """supervisor_app.py on `run_dir` until it exits (every process of its session killed after)."""
    proc = subprocess.Popen([sys.executable, str(APP), str(run_dir), scenario], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=20)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def bind_socket(path: Path) -> Path:
    """Leave a unix socket file at `path`, as a program that bound it would."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- refused run directories ----------------------------------------------------------


def test_a_symlinked_run_dir_is_refused_and_what_it_points_to_is_untouched(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    other.chmod(0o755)
    theirs = [bind_socket(other / "their.sock"), bind_socket(other / "trades.sock")]
    (other / "notes.sock").write_text("a regular file\n")
    link = tmp_path / "run"
    link.symlink_to(other)
    result = supervise(link)
    assert result.returncode == 1
    assert f"the run directory {link} is a symbolic link" in result.stdout
    assert mode(other) == 0o755
    assert sorted(p.name for p in other.iterdir()) == ["notes.sock", "their.sock", "trades.sock"]
    assert all(stat.S_ISSOCK(p.lstat().st_mode) for p in theirs)


def test_a_run_dir_others_can_write_to_is_refused_and_links_planted_in_it_are_not_followed(tmp_path):
    victims = {name: tmp_path / f"victim-{name}" for name in ("supervisor.pid", "naive-mp.log")}
    for victim in victims.values():
        victim.write_text("precious\n")
        victim.chmod(0o644)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for name, victim in victims.items():  # planted by another user
        (shared / name).symlink_to(victim)
        if os.geteuid() == 0:
            os.lchown(shared / name, NOBODY, NOBODY)
    result = supervise(shared)
    assert result.returncode == 1
    assert f"the run directory {shared} is writable by group and others (mode 0777)" in result.stdout
    assert f"chmod 700 {shared}" in result.stdout
    assert all(v.read_text() == "precious\n" and mode(v) == 0o644 for v in victims.values())
    assert mode(shared) == 0o777


@pytest.mark.parametrize("name", ["supervisor.pid", "naive-mp.log"])
def test_a_symlink_in_our_private_run_dir_is_never_followed(tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "state.db").write_text("")  # a run directory of ours
    (run_dir / name).symlink_to(victim)
    result = supervise(run_dir)
    assert result.returncode == 1
    assert f"{run_dir / name} is a symbolic link" in result.stdout
    assert victim.read_text() == "precious\n"
    assert (run_dir / name).is_symlink()


def test_a_non_empty_directory_that_holds_no_run_is_refused_and_left_as_it_was(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    (home / "notes.txt").write_text("mine\n")
    (home / "x.sock").write_text("not a socket\n")
    result = supervise(home)
    assert result.returncode == 1
    assert f"{home} is not empty and holds no naive-mp run" in result.stdout
    assert mode(home) == 0o755
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt", "x.sock"]


def test_a_run_dir_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to make a directory of another user")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(RunDirError, match=f"belongs to another user \\(uid {NOBODY}\\)"):
        prepare_run_dir(theirs)


# -- accepted run directories -----------------------------------------------------------


def test_a_new_run_dir_is_private_and_an_existing_one_is_only_ever_made_more_private(tmp_path):
    assert mode(prepare_run_dir(tmp_path / "a" / "b")) == 0o700
    ours = tmp_path / "ours"
    ours.mkdir()
    ours.chmod(0o755)  # nobody else could write into it: safe to keep, made private
    (ours / "naive-mp.log").write_text("")
    (ours / "notes.txt").write_text("beside the run: kept\n")
    assert prepare_run_dir(ours) == ours and mode(ours) == 0o700
    assert (ours / "notes.txt").exists()


# -- what the run creates in it ------------------------------------------------------------

SOCKETS = ["acks.sock", "control.sock", "gateway.sock", "leader-TESTUSDT.sock", "trades.sock", "updates.sock"]


def loose_modes(run_dir: Path) -> dict[str, str]:
    """Whatever in `run_dir` (at any depth) group or others may touch, with its mode."""
    return {str(p.relative_to(run_dir)): f"{mode(p):04o}" for p in run_dir.rglob("*") if mode(p) & 0o077}


def test_everything_the_run_creates_is_private_whatever_the_umask(tmp_path):
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv",
                      [f"{1 - 0.0001 * i:.8f}" for i in range(150)], gap_ms=20)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "naive-mp.log").write_text("an older run's lines\n")
    (run_dir / "naive-mp.log").chmod(0o644)  # as an older naive-mp left it
    t = Tree(run_dir, "--replay", tape, "--speed", "1", "--exit-at-end", "--tick-size", "0.0001",
             "--step-size", "0.01", umask=0)
    try:
        t.wait_for(lambda: all((run_dir / name).exists() for name in SOCKETS))
        assert loose_modes(run_dir) == {}
        assert t.wait(timeout=60)[0] == 0
    finally:
        t.kill_all()
    assert {"naive-mp.log", "state.db", "orders.csv", "summary.json"} <= {p.name for p in run_dir.iterdir()}
    assert loose_modes(run_dir) == {}


# -- removing leftover sockets ------------------------------------------------------------


def test_only_our_own_sockets_are_removed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = bind_socket(elsewhere / "acks.sock")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    ours = [bind_socket(run_dir / "trades.sock"), bind_socket(run_dir / "leader-XRPUSDT.sock")]
    bind_socket(run_dir / "their.sock")
    (run_dir / "gateway.sock").write_text("a regular file\n")
    (run_dir / "acks.sock").symlink_to(target)
    assert sorted(remove_sockets(run_dir)) == sorted(ours)
    assert sorted(p.name for p in run_dir.iterdir()) == ["acks.sock", "gateway.sock", "their.sock"]
    assert target.exists() and (run_dir / "acks.sock").is_symlink()


# -- an unwritable run directory, through `start` ------------------------------------------


def as_nobody() -> list[str]:
    """The command prefix that runs a command as nobody when the tests run as root (root writes anywhere)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):  # (subprocess's user= cannot exec a python under /root)
        pytest.skip("needs setpriv to run as another user")
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import naive_mp.cli"], capture_output=True, text=True)
    if probe.returncode != 0:  # a checkout (or venv) in a private folder: nobody cannot run this code
        pytest.skip(f"the user nobody cannot run this checkout's code ({probe.stderr.strip()[-200:]})")
    return prefix


def _unwritable(base: Path, case: str) -> Path:
    """A run directory of the user who runs `start` (nobody, when the tests run as root)."""
    run_dir = base / "run"
    run_dir.mkdir(mode=0o700)
    name = "naive-mp.log" if case == "read-only directory" else case.split()[0]
    (run_dir / name).write_text("")
    (run_dir / name).chmod(0o600)
    if os.geteuid() == 0:  # root writes anywhere: `start` runs as nobody
        os.chown(run_dir, NOBODY, NOBODY)
        if case == "read-only directory":
            os.chown(run_dir / name, NOBODY, NOBODY)  # else left to root, as a run with sudo leaves it
    if case == "read-only directory":
        run_dir.chmod(0o500)
    return run_dir


@pytest.mark.parametrize("case", ["read-only directory", "supervisor.pid of root", "naive-mp.log of root"])
def test_an_unwritable_run_dir_is_a_message_not_a_traceback(case):
    if case != "read-only directory" and os.geteuid() != 0:
        pytest.skip("needs root to leave a file of another user")
    base = Path(tempfile.mkdtemp(prefix="naive-mp-test-"))  # not under tmp_path: nobody must reach it
    try:
        base.chmod(0o711)
        tape = write_tape(base / "TESTUSDT-trades-2024-01-01.csv", ["1.00000000"] * 3)
        tape.chmod(0o644)
        run_dir = _unwritable(base, case)
        result = subprocess.run([*as_nobody(), sys.executable, "-m", "naive_mp", "start", "--replay", str(tape),
                                 "--exit-at-end", "--tick-size", "0.0001", "--step-size", "0.01",
                                 "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(base)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(run_dir) in result.stderr
    assert ("is not writable" if case == "read-only directory" else "cannot open") in result.stderr


def test_the_state_database_is_a_marker_of_a_run_directory():
    from naive_mp.runtime import rundir
    from naive_mp.store import schema
    assert rundir.DB_FILE == schema.DB_FILE and schema.DB_FILE in rundir.MARKERS
