"""`naive-mp download` against a local fake archive (127.0.0.1 only), faults included."""

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from archive_server import FakeArchive, tape_zip
from naive_mp.cli import main
from naive_mp.data.days import DayError, parse_days
from naive_mp.data.download import Archive, Status

SYMBOL = "XRPUSDT"
DAY = "2019-06-01"
NAME = f"{SYMBOL}-trades-{DAY}.zip"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Whatever the environment says, 127.0.0.1 is reached directly."""
    for key in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server():
    with FakeArchive() as archive:
        yield archive


def download(archive_url, folder, *args):
    """Run the command in-process; a traceback would fail the test (catch_exceptions=False)."""
    argv = ["download", SYMBOL, *args, "--dir", str(folder), "--base-url", archive_url]
    return CliRunner().invoke(main, argv, catch_exceptions=False)


def zip_gets(server, path):
    """How many GETs of the zip itself (not its .CHECKSUM) the server saw, and their Ranges."""
    return [rng for _, _, rng in server.requests_for(path)]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".zip", ".CHECKSUM")))


# --- a good day, then backtest of it ------------------------------------------


def test_good_day_is_downloaded_verified_and_is_a_tape(server, tmp_path):
    data = tape_zip(SYMBOL, DAY, n=300)
    server.publish(SYMBOL, DAY, data)
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 0, result.output
    tape = tmp_path / NAME
    assert tape.read_bytes() == data
    assert f"{SYMBOL} {DAY}  downloaded" in result.output and str(tape) in result.output
    checksum = (tmp_path / (NAME + ".CHECKSUM")).read_text()
    assert checksum == f"{hashlib.sha256(data).hexdigest()}  {NAME}\n"
    assert leftovers(tmp_path) == []
    assert "%" not in result.output  # not a terminal: no progress bar
    run = CliRunner().invoke(main, ["backtest", str(tape), "--tick-size", "0.00001",
                                    "--step-size", "0.1", "--json"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["events"] == 300


def test_a_range_of_days_downloads_each_day_in_order(server, tmp_path):
    days = [f"2019-06-0{d}" for d in range(1, 8)]
    for day in days:
        server.publish(SYMBOL, day, tape_zip(SYMBOL, day, n=20))
    result = download(server.url, tmp_path, "2019-06-01..2019-06-07")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines] == days
    assert all(f"{SYMBOL}-trades-{day}.zip" in line for day, line in zip(days, lines))
    for day in days:
        assert (tmp_path / f"{SYMBOL}-trades-{day}.zip").read_bytes() == server.files[server.path(SYMBOL, day)]


# --- refusals -----------------------------------------------------------------


def test_wrong_checksum_is_refused_and_nothing_is_kept(server, tmp_path):
    server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY), digest="0" * 64)
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 1
    assert "checksum mismatch" in result.output and "deleted" in result.output
    assert "1 of 1 days failed: 2019-06-01" in result.output
    assert list(tmp_path.iterdir()) == []


def test_missing_day_is_named_and_the_other_days_still_come(server, tmp_path):
    for day in ("2019-06-01", "2019-06-03"):
        server.publish(SYMBOL, day, tape_zip(SYMBOL, day, n=10))
    result = download(server.url, tmp_path, "2019-06-01..2019-06-03")
    assert result.exit_code == 1
    assert f"{SYMBOL} 2019-06-02  failed" in result.output
    assert "not in the archive" in result.output and "404" in result.output
    assert "1 of 3 days failed: 2019-06-02" in result.output
    assert (tmp_path / f"{SYMBOL}-trades-2019-06-01.zip").exists()
    assert (tmp_path / f"{SYMBOL}-trades-2019-06-03.zip").exists()
    assert not (tmp_path / f"{SYMBOL}-trades-2019-06-02.zip").exists()


@pytest.mark.parametrize("args, message", [
    (["2019-6-1"], "'2019-6-1' is not a day: expected YYYY-MM-DD"),
    (["20190601"], "expected YYYY-MM-DD"),
    (["2019-02-30"], "not a day of the calendar"),
    (["2019-06-07..2019-06-01"], "the range ends before it starts"),
    (["2019-06-01..yesterday"], "'yesterday' is not a day"),
])
def test_bad_day_text_exits_2_naming_it(tmp_path, args, message):
    result = download("http://127.0.0.1:9", tmp_path, *args)  # never contacted
    assert result.exit_code == 2
    assert message in result.output


def test_bad_symbol_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["download", "XRP/USDT", DAY, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "is not a symbol" in result.output


# --- already there, broken, interrupted ----------------------------------------


def test_intact_file_is_skipped_without_asking_for_it(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY))
    (tmp_path / NAME).write_bytes(server.files[path])
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 0, result.output
    assert f"{SYMBOL} {DAY}  already present" in result.output
    assert zip_gets(server, path) == []  # only the .CHECKSUM was asked for
    assert server.requests_for(path + ".CHECKSUM")


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_broken_file_is_refetched(server, tmp_path, damage):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY))
    data = server.files[path]
    broken = data[: len(data) // 2] if damage == "truncated" else b"x" * len(data)
    (tmp_path / NAME).write_bytes(broken)
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 0, result.output
    assert f"{SYMBOL} {DAY}  refetched" in result.output
    assert (tmp_path / NAME).read_bytes() == data
    assert leftovers(tmp_path) == []


def test_cut_transfer_is_resumed_with_a_range_request(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
    server.faults[path] = [("cut", 5000)]
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 0, result.output
    assert zip_gets(server, path) == [None, "bytes=5000-"]
    assert "resumed from byte 5,000" in result.output
    assert (tmp_path / NAME).read_bytes() == server.files[path]
    assert leftovers(tmp_path) == []


def test_cut_transfer_without_range_support_is_fetched_again(tmp_path):
    with FakeArchive(ranges=False) as server:
        path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
        server.faults[path] = [("cut", 5000), ("cut", 7000)]
        result = download(server.url, tmp_path, DAY)
        assert result.exit_code == 0, result.output
        assert len(zip_gets(server, path)) == 3  # asked to resume, got the whole file each time
        assert "resumed" not in result.output
        assert (tmp_path / NAME).read_bytes() == server.files[path]


def test_part_left_by_an_interrupted_run_is_resumed(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
    (tmp_path / (NAME + ".part")).write_bytes(server.files[path][:3000])
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 0, result.output
    assert zip_gets(server, path) == ["bytes=3000-"]
    assert (tmp_path / NAME).read_bytes() == server.files[path]
    assert leftovers(tmp_path) == []


def test_stale_part_gives_a_bad_checksum_then_starts_over(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
    (tmp_path / (NAME + ".part")).write_bytes(b"\0" * 3000)  # not this file's first bytes
    result = download(server.url, tmp_path, DAY)
    assert result.exit_code == 0, result.output
    assert zip_gets(server, path) == ["bytes=3000-", None]
    assert (tmp_path / NAME).read_bytes() == server.files[path]


def test_silent_server_times_out_and_the_transfer_resumes(tmp_path):
    with FakeArchive(stall_s=3.0) as server:
        path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
        server.faults[path] = [("stall", 4000)]
        result = download(server.url, tmp_path, DAY, "--timeout", "0.5")
        assert result.exit_code == 0, result.output
        assert zip_gets(server, path) == [None, "bytes=4000-"]
        assert (tmp_path / NAME).read_bytes() == server.files[path]


def test_a_transfer_that_keeps_failing_keeps_its_part_for_the_next_run(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
    server.faults[path] = [("cut", 4000)] + [("status", 503)] * 3
    archive = Archive(base_url=server.url, retry_delay=0)
    outcome = archive.download(SYMBOL, dt.date(2019, 6, 1), tmp_path)
    assert outcome.status is Status.FAILED
    assert "503" in outcome.detail and "run again to resume" in outcome.detail
    assert not (tmp_path / NAME).exists()
    assert (tmp_path / (NAME + ".part")).read_bytes() == server.files[path][:4000]
    again = archive.download(SYMBOL, dt.date(2019, 6, 1), tmp_path)  # the server is fine now
    assert again.status is Status.DOWNLOADED and "resumed from byte 4,000" in again.detail
    assert (tmp_path / NAME).read_bytes() == server.files[path]


def test_a_broken_file_leaves_the_tape_name_even_when_the_refetch_fails(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
    server.faults[path] = [("status", 503)] * 3
    (tmp_path / NAME).write_bytes(server.files[path][:3000])
    outcome = Archive(base_url=server.url, retry_delay=0).download(SYMBOL, dt.date(2019, 6, 1), tmp_path)
    assert outcome.status is Status.FAILED and "run again to resume" in outcome.detail
    assert not (tmp_path / NAME).exists()  # never a broken tape under the tape's name
    assert (tmp_path / (NAME + ".part")).read_bytes() == server.files[path][:3000]


def test_checksum_request_is_tried_again_after_a_5xx(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY))
    server.faults[path + ".CHECKSUM"] = [("status", 502), ("status", 503)]
    outcome = Archive(base_url=server.url, retry_delay=0).download(SYMBOL, dt.date(2019, 6, 1), tmp_path)
    assert outcome.status is Status.DOWNLOADED
    assert len(server.requests_for(path + ".CHECKSUM")) == 3


# --- network errors, locks, progress --------------------------------------------


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_archive_is_a_clear_message_not_a_traceback(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    proc = subprocess.run([sys.executable, "-m", "naive_mp", "download", SYMBOL, DAY, "--dir", str(tmp_path),
                           "--base-url", url, "--timeout", "2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Connection refused" in proc.stderr and "Traceback" not in proc.stderr
    assert "1 of 1 days failed: 2019-06-01" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_part_locked_by_another_download_is_left_alone(server, tmp_path):
    server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY))
    with open(tmp_path / (NAME + ".part"), "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        outcome = Archive(base_url=server.url).download(SYMBOL, dt.date(2019, 6, 1), tmp_path)
    assert outcome.status is Status.FAILED and "another process" in outcome.detail
    assert not (tmp_path / NAME).exists()


def test_progress_sees_the_size_and_every_byte(server, tmp_path):
    path = server.publish(SYMBOL, DAY, tape_zip(SYMBOL, DAY, n=2000))
    server.faults[path] = [("cut", 5000)]
    seen = []

    @contextlib.contextmanager
    def progress(label, total, done):
        seen.append([label, total, done, 0])
        yield lambda n: seen[-1].__setitem__(3, seen[-1][3] + n)

    Archive(base_url=server.url, progress=progress).download(SYMBOL, dt.date(2019, 6, 1), tmp_path)
    size = len(server.files[path])
    assert seen == [[f"{SYMBOL} {DAY}", size, 0, 5000], [f"{SYMBOL} {DAY}", size, 5000, size - 5000]]


# --- days ---------------------------------------------------------------------


def test_days_and_ranges_expand_in_order_once_each():
    days = parse_days(["2019-06-03", "2019-05-31..2019-06-02", "2019-06-01", "2020-02-28..2020-03-01"])
    assert [d.isoformat() for d in days] == [
        "2019-06-03", "2019-05-31", "2019-06-01", "2019-06-02", "2020-02-28", "2020-02-29", "2020-03-01"]
    with pytest.raises(DayError):
        parse_days(["2019-06-01.."])
