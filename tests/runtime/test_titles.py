"""Process titles for ps/htop, and a comm (15 characters) that top tells apart, in a throwaway process."""

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from naive_mp.runtime.process import set_title
set_title(sys.argv[1])
print(open('/proc/self/comm').read().strip())
print(open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode())
"""


@pytest.mark.parametrize("title, comm", [
    ("trader XRPUSDT#7 SELL_PLACED", "XRPUSDT#7"),
    ("leader XRPUSDT", "XRPUSDT leader"),
    ("gateway paper", "nmp gateway"),
    ("supervisor", "nmp supervisor"),
    ("trader 1000SHIBUSDT#123456 NEW", "1000SHIBUSDT#12"),
])
def test_each_process_has_a_comm_that_top_tells_apart(title, comm):
    out = subprocess.run([sys.executable, "-c", SCRIPT, title], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [comm, f"naive-mp: {title}"]
