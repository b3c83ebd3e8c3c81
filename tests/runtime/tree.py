"""Drive a real `naive-mp start` process tree from a test, and never leave it behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

START_WITH = Path(__file__).with_name("start_with.py")


def write_tape(path: Path, prices: list[str], *, start_id: int = 1, start_ms: int = 1_700_000_000_000,
               gap_ms: int = 100) -> Path:
    """A Binance-layout tape with one trade per price, `gap_ms` apart."""
    lines = [f"{start_id + i},{p},1.00000000,{p},{start_ms + i * gap_ms},True,True\n" for i, p in enumerate(prices)]
    path.write_text("".join(lines))
    return path


def naive_mp(*args, timeout=120, check=False) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "naive_mp", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"naive-mp {' '.join(map(str, args))} failed: {result.stderr[-3000:]}")
    return result


class Tree:
    """A `naive-mp start` in the background, in its own session (killed whole at the end).

    `knobs`: test-only settings the command line does not offer (see start_with.py);
    `umask`: the one `start` is run with (-1: this process's).
    """

    def __init__(self, run_dir: Path, *args, knobs: dict | None = None, umask: int = -1):
        self.run_dir = run_dir
        self.stderr = open(run_dir.parent / f"{run_dir.name}.stderr", "w")
        command = [sys.executable, str(START_WITH), json.dumps(knobs)] if knobs else [sys.executable, "-m", "naive_mp"]
        self.proc = subprocess.Popen([*command, "start", "--run-dir", str(run_dir), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, start_new_session=True,
                                     umask=umask)

    def status(self) -> dict | None:
        result = naive_mp("status", "--json", "--run-dir", self.run_dir, timeout=10)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def processes(self, role: str) -> list[dict]:
        return [p for p in self.processes_all() if p["role"] == role]

    def processes_all(self) -> list[dict]:
        """Every process of the tree in status (none when it does not answer)."""
        return (self.status() or {"processes": []})["processes"]

    def wait_for(self, what, timeout: float = 20.0, every: float = 0.05):
        """Poll `what()` until it returns something truthy; fail naming the log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            if self.proc.poll() is not None:
                break
            time.sleep(every)
        raise AssertionError(f"timed out waiting; log tail:\n{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.run_dir / "naive-mp.log"
        return path.read_text() if path.exists() else ""

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def kill_all(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.stderr.close()


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, we read
        return False


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()
