"""A replay started on a terminal shows its progress (position, speed, ETA) on one line; piped, it does not."""

import os
import pty
import subprocess
import sys

from tree import write_tape

FILTERS = ["--tick-size", "0.0001", "--step-size", "0.01"]


def test_start_on_a_terminal_draws_the_replay_s_progress_and_piped_it_does_not(tmp_path):
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", ["1.00000000"] * 120, gap_ms=25)
    args = [sys.executable, "-m", "naive_mp", "start", "--replay", tape, "--speed", "1", "--exit-at-end",
            *FILTERS]
    leader, follower = pty.openpty()
    done = subprocess.run([*map(str, args), "--run-dir", str(tmp_path / "a")], stdout=subprocess.PIPE,
                          stderr=follower, timeout=120)
    os.close(follower)
    seen = b""
    try:
        while chunk := os.read(leader, 65536):
            seen += chunk
    except OSError:  # the other end is closed: all read
        pass
    os.close(leader)
    assert done.returncode == 0
    text = seen.decode(errors="replace")
    assert "replay: " in text and "/120 (" in text and "ETA" in text
    assert "\r\x1b[K" in text[text.rindex("replay: "):], "the progress line is cleared, never left behind"
    piped = subprocess.run([*map(str, args), "--run-dir", str(tmp_path / "b")], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0 and "replay: " not in piped.stderr
