"""What a stranger can send to a socket: message size bounds (far above every legitimate message,
holding against an oversized frame sent to each bound socket of a real running tree) and a flood
of rogue frames, which writes a few log lines, not one each."""

import socket
import struct
import time
from decimal import Decimal
from pathlib import Path

import pytest

from naive_mp import wire
from naive_mp.core.messages import OrderFilled
from naive_mp.runtime.sockets import MAX_MESSAGE_BYTES
from tree import Tree, alive, write_tape

BIG = 2**63 - 1
PRICE = Decimal("123456789.123456789012345678")
OVERSIZED = 100 * 2**20  # the frame of the report: 100 MB
GROWTH_BOUND = 30 * 2**20  # what the target's peak memory may grow by


def test_the_bound_is_far_above_the_largest_legitimate_messages():
    batch = wire.TradeBatch(symbol="X" * 20, seq=BIG, sent_ns=BIG, trades=[wire.Trade(BIG, PRICE, BIG)] * 256)
    trader = wire.ProcessInfo(role="trader", pid=2**22, symbol="X" * 20, trader_id=BIG, state="SELL_PLACED",
                              orders=BIG, restarts=BIG, started_at=1.7e9)
    beat = wire.Heartbeat(process=trader, children=[trader] * 1000)
    fill = OrderFilled(client_order_id="X" * 36, order_id=BIG, side="SELL", price=PRICE, quantity=PRICE, trade_id=BIG)
    crossed = wire.Crossed(symbol="X" * 20, seq=BIG, trade=wire.Trade(BIG, PRICE, BIG), fills=[fill] * 1000)
    assert len(wire.encode(batch)) * 64 < MAX_MESSAGE_BYTES
    assert len(wire.encode(beat)) * 5 < MAX_MESSAGE_BYTES  # a leader of 1,000 traders
    assert len(wire.encode(crossed)) * 5 < MAX_MESSAGE_BYTES  # a trade that fills 1,000 orders


def memory(pid: int, field: str) -> int:
    """VmHWM (peak) or VmRSS of `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0)
    except OSError as exc:
        pytest.skip(f"cannot reset the peak memory of a process: {exc}")


def zmtp_send(path: Path, socket_type: bytes, body: bytes) -> None:
    """Connect to a zmq ipc socket as a ZMTP 3.0 peer of `socket_type` and send one message, raw.

    A stranger needs no libzmq; ours, as a SUB, would itself choke on a 100 MB topic.
    """
    ready = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(greeting + b"\x04" + bytes([len(ready)]) + ready)
        try:
            sock.sendall(b"\x02" + struct.pack(">Q", len(body)) + body)
        except OSError:  # disconnected at the size: what the bound does
            pass


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("limits")
    prices = [f"{1 - 0.0001 * (i % 50):.8f}" for i in range(3000)]
    tape = write_tape(tmp_path / "TESTUSDT-trades-2024-01-01.csv", prices, gap_ms=50)
    t = Tree(tmp_path / "run", "--replay", tape, "--speed", "1", "--tick-size", "0.0001", "--step-size", "0.01")
    try:  # never left behind, even when it does not come up
        t.wait_for(lambda: {"gateway", "leader", "streamer", "trader"} <= {p["role"] for p in t.processes_all()})
        yield t
    finally:
        t.kill_all()


# socket, whose it is, the peer that sends, the frame's head (an XPUB takes subscriptions: \x01 + topic)
TARGETS = [
    ("gateway", "gateway", b"DEALER", b""),
    ("updates", "gateway", b"SUB", b"\x01"),
    ("trades", "streamer", b"SUB", b"\x01"),
    ("acks", "streamer", b"PUSH", b""),
    ("leader-TESTUSDT", "leader", b"DEALER", b""),
    ("control", "supervisor", b"DEALER", b""),
]


@pytest.mark.parametrize("name, role, kind, head", TARGETS, ids=[t[0] for t in TARGETS])
def test_an_oversized_frame_neither_kills_nor_bloats_the_process_behind_a_socket(tree, name, role, kind, head):
    pid = tree.proc.pid if role == "supervisor" else tree.processes(role)[0]["pid"]
    reset_peak(pid)
    before = memory(pid, "VmRSS")
    zmtp_send(tree.run_dir / f"{name}.sock", kind, head + b"\xc1" * OVERSIZED)
    time.sleep(1.0)  # what the process would do with it, it has done by now
    grown = memory(pid, "VmHWM") - before
    assert grown < GROWTH_BOUND, f"{role} grew by {grown / 2**20:.0f} MiB"
    assert alive(pid)
    status = tree.status()
    assert status is not None and status["supervisor"]["pid"] == tree.proc.pid
    if role != "supervisor":
        assert [p["pid"] for p in status["processes"] if p["role"] == role][:1] == [pid]


def test_a_message_at_the_bound_passes_and_one_byte_more_does_not(tmp_path):
    import zmq

    from naive_mp.runtime import sockets
    ctx = zmq.Context()
    try:
        router = sockets.make(ctx, zmq.ROUTER)
        router.bind(f"ipc://{tmp_path / 'r.sock'}")
        dealer = sockets.make(ctx, zmq.DEALER)
        dealer.connect(f"ipc://{tmp_path / 'r.sock'}")
        dealer.send(b"x" * MAX_MESSAGE_BYTES)
        assert router.poll(5000) and len(router.recv_multipart()[1]) == MAX_MESSAGE_BYTES
        dealer.send(b"x" * (MAX_MESSAGE_BYTES + 1))  # the router drops the connection at its size
        dealer.send(b"after")  # comes on the next connection
        assert router.poll(5000) and router.recv_multipart()[1] == b"after"
    finally:
        ctx.destroy(linger=0)


FLOOD = 60_000


def test_a_flood_of_rogue_frames_writes_a_few_log_lines_not_one_each(tree):
    import zmq

    from naive_mp.logs import THROTTLE_BURST
    ctx = zmq.Context()
    try:
        gateway, control = (ctx.socket(zmq.DEALER) for _ in range(2))
        for sock, name in ((gateway, "gateway"), (control, "control")):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(wire.address(tree.run_dir, name))
        for i in range(FLOOD):
            gateway.send(b"\x93not a message")
            control.send_multipart([b"\x93not a message"] if i % 2 else [b"a", b"b", b"c"])
        gateway.send(wire.encode(wire.Query(req_id=7, client_order_id="TESTUSDT-1-1-B")))
        assert gateway.poll(30_000), "the gateway did not answer after the flood"
        assert wire.Decoder("gateway", wire.GatewayReply)(gateway.recv()).req_id == 7  # every rogue one was read
    finally:
        ctx.destroy(linger=0)
    tree.wait_for(lambda: tree.status(), timeout=30)  # the supervisor read its flood too
    stderr = (tree.run_dir.parent / f"{tree.run_dir.name}.stderr").read_text()
    for text in (tree.log(), stderr):
        assert 1 <= text.count("rogue message on the gateway socket") <= THROTTLE_BURST + 3
        assert 2 <= text.count("rogue message on the control socket") <= 2 * (THROTTLE_BURST + 3)
