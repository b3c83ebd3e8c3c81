"""The supervisor with real processes on real sockets, over dummy children (supervisor_app.py).

Every supervisor runs in its own session (start_new_session), so a fixture
can find every process of a test, descendants included, by session id, and
kill what is left in teardown.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from naive_mp import wire
from naive_mp.runtime.control import NotRunning, ask
from naive_mp.runtime.rundir import AlreadyRunning, PidLock, prepare_run_dir
from naive_mp.wire import StatusRequest, StopReply, StopRequest

APP = Path(__file__).with_name("supervisor_app.py")


def wait_for(condition, timeout_s=5.0, what="condition"):
    """condition()'s first truthy value, polled every 20 ms; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def session_pids(sid: int) -> list[int]:
    """Every live (not zombie) process of session `sid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Running:
    """One supervisor subprocess and its run directory."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path, output: Path):
        self.proc, self.run_dir, self.output = proc, run_dir, output

    def status(self, timeout_s=3.0):
        return ask(self.run_dir, StatusRequest(), timeout_s=timeout_s)

    def ready(self, roles=("gateway", "leader", "trader", "streamer")):
        """Wait until every role in `roles` shows in status with a pid (children beat); the reply."""
        def complete():
            try:
                reply = self.status(timeout_s=0.5)
            except NotRunning:
                return None
            return reply if set(roles) <= {p.role for p in reply.processes} else None
        return wait_for(complete, what=f"{roles} in status")

    def wait(self, timeout_s=10.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.output.read_text()

    def forks(self, name: str) -> list[float]:
        path = self.run_dir / "forks.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [float(line.split()[2]) for line in lines if line.split()[0] == name]


@pytest.fixture
def supervisor(tmp_path):
    """start(scenario) -> Running; teardown kills every process those supervisors started."""
    started: list[subprocess.Popen] = []

    def start(scenario="basic", run_dir=None) -> Running:
        run_dir = run_dir or tmp_path / "run"
        output = tmp_path / f"supervisor-{len(started)}.out"
        with open(output, "w") as out:
            proc = subprocess.Popen([sys.executable, str(APP), str(run_dir), scenario], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        started.append(proc)
        return Running(proc, run_dir, output)

    yield start
    for proc in started:
        for pid in session_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait(timeout=5)


def test_status_lists_every_child_with_its_role_pid_and_title(supervisor):
    run = supervisor("basic")
    reply = run.ready()
    by_role = {p.role: p for p in reply.processes}
    assert sorted(by_role) == ["gateway", "leader", "streamer", "trader"]
    assert reply.supervisor.pid == run.proc.pid
    assert by_role["leader"].symbol == "XRPUSDT" and by_role["trader"].trader_id == 1
    assert all(p.restarts == 0 and alive(p.pid) for p in reply.processes)
    assert cmdline(run.proc.pid) == "naive-mp: supervisor"
    expected = {"gateway": "naive-mp: gateway paper", "leader": "naive-mp: leader XRPUSDT",
                "trader": "naive-mp: trader XRPUSDT#1 BUY_PLACED", "streamer": "naive-mp: streamer"}
    # a child names itself just after the fork: on a busy machine, give it a moment
    wait_for(lambda: {role: cmdline(p.pid) for role, p in by_role.items()} == expected, what="the titles")
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(by_role["leader"].pid)], capture_output=True, text=True)
    assert ps.stdout.strip() == "naive-mp: leader XRPUSDT"


def test_a_killed_child_is_restarted_and_counted(supervisor):
    run = supervisor("basic")
    before = {p.role: p for p in run.ready().processes}
    os.kill(before["leader"].pid, signal.SIGKILL)

    def restarted():
        leader = next((p for p in run.status().processes if p.role == "leader"), None)
        return leader if leader and leader.pid != before["leader"].pid else None
    leader = wait_for(restarted, timeout_s=2.0, what="a new leader")
    assert leader.restarts == 1 and alive(leader.pid)
    wait_for(lambda: not alive(before["trader"].pid), timeout_s=2.0, what="the old trader to die with its leader")
    assert "leader-XRPUSDT (pid %d) was killed by SIGKILL" % before["leader"].pid in run.log()
    others = {p.role: p for p in run.status().processes}
    assert others["gateway"].pid == before["gateway"].pid and others["gateway"].restarts == 0


def test_a_child_killed_after_its_first_heartbeat_comes_back_at_once_however_often(supervisor):
    run = supervisor("basic")
    pid = next(p.pid for p in run.ready().processes if p.role == "leader")
    for kills in range(1, 7):
        os.kill(pid, signal.SIGKILL)

        def beating_again():  # a heartbeat is the hello of the supervisor's children
            leader = next((p for p in run.status().processes if p.role == "leader"), None)
            return leader if leader and leader.pid != pid and leader.state == "running" else None
        leader = wait_for(beating_again, timeout_s=3.0, what=f"the leader back after kill {kills}")
        assert leader.restarts == kills
        pid = leader.pid
    assert run.log().count("restarting leader-XRPUSDT in 0.0 s") == 6 and "giving up" not in run.log()


def test_a_child_that_cannot_boot_is_given_up_without_a_tight_loop(supervisor):
    run = supervisor("boot")
    assert run.wait(timeout_s=10) == 1
    forks = run.forks("leader-XRPUSDT")
    assert len(forks) == 5
    gaps = [b - a for a, b in zip(forks, forks[1:])]
    assert gaps[0] >= 0.09 and gaps[-1] >= 0.7 and forks[-1] - forks[0] >= 1.4  # 0.1, 0.2, 0.4, 0.8 s
    assert "giving up on leader-XRPUSDT: it could not boot 5 times in a row" in run.log()
    assert "leader-XRPUSDT cannot boot (test)" in run.log()
    assert session_pids(run.proc.pid) == []
    assert sorted(p.name for p in run.run_dir.iterdir() if p.suffix in (".sock", ".pid")) == []


@pytest.mark.parametrize("how", ["SIGTERM", "StopRequest"])
def test_sigterm_and_stop_leave_nothing_behind(supervisor, how):
    run = supervisor("basic")
    pids = [p.pid for p in run.ready().processes]
    if how == "SIGTERM":
        os.kill(run.proc.pid, signal.SIGTERM)
    else:
        assert ask(run.run_dir, StopRequest()) == StopReply(pid=run.proc.pid)
    assert run.wait(timeout_s=10) == 0
    assert [pid for pid in pids if alive(pid)] == []
    assert session_pids(run.proc.pid) == []
    assert sorted(p.name for p in run.run_dir.iterdir() if p.suffix in (".sock", ".pid")) == []
    stops = [line.split()[0] for line in (run.run_dir / "stops.log").read_text().splitlines()]
    assert stops == ["streamer", "leader-XRPUSDT", "gateway"]  # the gateway last: it writes the results


def test_a_child_deaf_to_sigterm_is_killed_after_the_grace_period(supervisor):
    run = supervisor("stubborn")
    run.ready(roles=("gateway", "streamer"))
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.wait(timeout_s=10) == 0
    assert "still running after 0.5 s: killing it" in run.log()
    assert session_pids(run.proc.pid) == []


def test_the_end_of_the_replay_ends_the_run(supervisor):
    run = supervisor("end")
    assert run.wait(timeout_s=10) == 0
    assert "stopping the run: the replay is over" in run.log()
    assert run.forks("streamer") and len(run.forks("streamer")) == 1
    assert session_pids(run.proc.pid) == []


def test_a_silent_child_is_killed_as_stale_and_restarted(supervisor):
    run = supervisor("stale")
    wait_for(lambda: len(run.forks("gateway")) >= 2, timeout_s=5.0, what="the stale gateway's restart")
    assert "sent no heartbeat for" in run.log()


def test_a_second_supervisor_on_the_same_run_dir_is_refused(supervisor):
    first = supervisor("basic")
    first.ready()
    second = supervisor("basic", run_dir=first.run_dir)
    assert second.wait(timeout_s=10) == 1
    assert (f"another naive-mp supervisor (pid {first.proc.pid}) runs on {first.run_dir}; "
            f"stop it with `naive-mp stop --run-dir {first.run_dir}`") in second.log()
    assert first.status().supervisor.pid == first.proc.pid


def test_the_run_dir_is_private(supervisor, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    run_dir.chmod(0o755)
    run = supervisor("basic", run_dir=run_dir)
    run.ready()
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert prepare_run_dir(tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700


def test_rogue_frames_on_the_control_socket_are_dropped(supervisor):
    run = supervisor("basic")
    run.ready()
    context = zmq.Context()
    try:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(wire.address(run.run_dir, "control"))
        dealer.send(b"\xc1 garbage")
        dealer.send_multipart([b"a", b"b", b"c"])
        dealer.send(wire.encode(wire.StopReply(pid=1)))  # well-formed, but not a request
        wait_for(lambda: run.log().count("rogue message on the control socket") >= 2, what="the warnings")
    finally:
        context.destroy(linger=0)
    assert run.status().supervisor.pid == run.proc.pid
    assert run.proc.poll() is None


def test_sighup_is_passed_to_every_leader_and_nothing_restarts(supervisor, tmp_path):
    run = supervisor("basic")
    pids = sorted(p.pid for p in run.ready().processes)
    os.kill(run.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload of settings: told 1 leaders" in run.log(), what="the reload line")
    reloads = wait_for(lambda: (p := run.run_dir / "reloads.log").exists() and p.read_text(), what="a reload")
    assert [line.split()[0] for line in reloads.splitlines()] == ["leader-XRPUSDT"]
    assert sorted(p.pid for p in run.status().processes) == pids


def test_the_pid_lock_is_exclusive_and_released(tmp_path):
    lock = PidLock(tmp_path)
    assert (tmp_path / "supervisor.pid").read_text().strip() == str(os.getpid())
    with pytest.raises(AlreadyRunning, match=f"another naive-mp supervisor \\(pid {os.getpid()}\\)"):
        PidLock(tmp_path)
    lock.release()
    assert not (tmp_path / "supervisor.pid").exists()
    PidLock(tmp_path).release()


def naive_mp(*args, env=None):
    return subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("command", ["status", "stop"])
def test_status_and_stop_with_nothing_running_exit_1(tmp_path, command):
    result = naive_mp(command, "--run-dir", tmp_path)
    assert result.returncode == 1
    assert f"no naive-mp supervisor is running on {tmp_path}" in result.stderr
    assert "Traceback" not in result.stderr
    by_env = naive_mp(command, env={"NAIVE_MP_RUN_DIR": str(tmp_path / "env")})
    assert by_env.returncode == 1 and str(tmp_path / "env") in by_env.stderr


def test_status_and_stop_commands_against_a_running_supervisor(supervisor):
    run = supervisor("basic")
    reply = run.ready()
    table = naive_mp("status", "--run-dir", run.run_dir)
    assert table.returncode == 0, table.stderr
    assert "ROLE" in table.stdout and "XRPUSDT" in table.stdout
    assert all(str(p.pid) in table.stdout for p in reply.processes)
    as_json = naive_mp("status", "--json", "--run-dir", run.run_dir)
    data = json.loads(as_json.stdout)
    assert data["supervisor"]["pid"] == run.proc.pid
    assert {p["role"] for p in data["processes"]} == {"gateway", "leader", "trader", "streamer"}
    assert {"role", "pid", "symbol", "trader_id", "state", "restarts"} <= set(data["processes"][0])
    stopped = naive_mp("stop", "--run-dir", run.run_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert run.proc.poll() is not None or run.wait(timeout_s=1) == 0
    assert session_pids(run.proc.pid) == []


@pytest.mark.parametrize("args, message", [
    (["--live", "--replay", __file__], "--live places real orders on the live market: it does not go with --replay"),
    (["XRPUSDT", "--allow-loss"], "--secrets and --allow-loss go with --live"),
    ([], "name the symbols to paper-trade on the live market"),
    (["--lockstep"], "--lockstep needs --replay TAPE"),
    (["--exit-at-end"], "--exit-at-end needs --replay TAPE"),
    (["--speed", "fast", "--replay", __file__], "--speed"),
])
def test_start_refuses_bad_usage_with_exit_2(tmp_path, args, message):
    result = naive_mp("start", "--run-dir", tmp_path / "run", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
