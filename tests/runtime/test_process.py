"""fork_child's exit codes, logs and descriptor hygiene, in a throwaway process (never pytest's)."""

import subprocess
import sys

SCRIPT = r"""
import logging, os, sys, time
from naive_mp.logs import setup_logging
from naive_mp.runtime.process import BootError, fork_child

setup_logging(logging.INFO, file=sys.argv[1], process="parent")
leaked_r, leaked_w = os.pipe()  # stands for the parent's sockets: closed in the child

def crash():
    raise ValueError("boom")

def boot():
    raise BootError("no socket for you")

def seven():
    return 7

def clean():
    logging.getLogger("child").info("logging still works in %s", open("/proc/self/cmdline").read().strip("\0"))
    try:
        os.fstat(leaked_w)
    except OSError:
        return None
    return 9

for name, body in [("crash", crash), ("boot", boot), ("seven", seven), ("clean", clean)]:
    pid = fork_child(f"test {name}", body)
    print(name, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


def test_fork_child_exit_codes_logs_and_fds(tmp_path):
    log_file = tmp_path / "test.log"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(log_file)], capture_output=True, text=True,
                            timeout=30)
    assert result.stdout.split("\n")[:4] == ["crash 1", "boot 3", "seven 7", "clean 0"], result.stderr
    log = log_file.read_text()
    assert "[test crash " in log and "crashed: ValueError: boom" in log
    assert "Traceback" in log and ", in crash\n" in log  # the traceback goes to the log file
    assert "Traceback" not in result.stderr  # stderr, the user's screen, has the one-line summary
    assert "crashed: ValueError: boom" in result.stderr
    assert "cannot start: no socket for you" in log
    assert "logging still works in naive-mp: test clean" in log

