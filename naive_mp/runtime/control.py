"""The control socket: children's heartbeats in, the CLI's status and stop requests.

The supervisor binds a ROUTER at `address(run_dir, "control")`. Children and
the CLI connect DEALERs: a DEALER never gets stuck the way a REQ does when
its peer dies, and a poll timeout bounds every wait.
"""

import logging
import os
from pathlib import Path

import zmq

from naive_mp import wire
from naive_mp.logs import Throttle
from naive_mp.runtime import rundir, sockets
from naive_mp.wire import Heartbeat, ProcessInfo

log = logging.getLogger("naive_mp.control")

HEARTBEAT_HWM = 4  # a few beats may queue; more would only be stale news


class NotRunning(Exception):
    """No supervisor answers on this run directory."""

    def __init__(self, run_dir: str | os.PathLike, why: str = ""):
        detail = f" ({why})" if why else ""
        super().__init__(f"no naive-mp supervisor is running on {run_dir}{detail}; "
                         f"start one with `naive-mp start --run-dir {run_dir} ...`")
        self.run_dir = run_dir


class ControlLink:
    """A child's line to the supervisor: `beat()` about once a second, from the child's own thread.

    Makes its own zmq context unless given one (create it after the fork).
    A heartbeat that cannot be sent right away is dropped, never waited for.
    """

    def __init__(self, run_dir: str | os.PathLike, context: zmq.Context | None = None):
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = sockets.make(self.context, zmq.DEALER, sndhwm=HEARTBEAT_HWM)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)  # no queueing for a supervisor not yet bound
        self.socket.connect(wire.address(run_dir, "control"))

    def beat(self, process: ProcessInfo, children: list[ProcessInfo] | tuple = (), samples=()) -> bool:
        """Send a Heartbeat; False when it was dropped (supervisor busy or not there)."""
        try:
            beat = Heartbeat(process=process, children=list(children), samples=list(samples))
            self.socket.send(wire.encode(beat), zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._own_context:
            self.context.term()


_reply_decoder = wire.Decoder("control reply", wire.ControlReply)


def ask(run_dir: str | os.PathLike, message, timeout_s: float = 3.0):
    """Send a StatusRequest/StopRequest to the supervisor on `run_dir`; its reply.

    Raises NotRunning when no supervisor holds the run directory or none
    answers within `timeout_s`.
    """
    if not Path(run_dir, "control.sock").exists():
        raise NotRunning(run_dir)
    if rundir.supervisor_pid(run_dir) is None:
        raise NotRunning(run_dir, "leftover files of a run that was killed")
    context = zmq.Context()
    try:
        # No size bound here: a short-lived client of our own supervisor, whose status
        # reply lists every trader of the run and may outgrow what a child sends.
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(wire.address(run_dir, "control"))
        socket.send(wire.encode(message))
        if not socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise NotRunning(run_dir, f"no answer within {timeout_s:g} s")
        return _reply_decoder(socket.recv())
    finally:
        context.destroy(linger=0)


class ControlServer:
    """The supervisor's ROUTER: yields well-formed requests, drops rogue frames with a warning."""

    def __init__(self, run_dir: str | os.PathLike, context: zmq.Context):
        self.socket = sockets.make(context, zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(wire.address(run_dir, "control"))
        self._decode = wire.Decoder("control", wire.ControlMessage)
        self._misshapen = Throttle(log)  # rate-limited, as the decoder's warnings are

    def receive(self, limit: int = 1000):
        """(envelope, message) for each waiting request; at most `limit`, so the caller is not starved."""
        for _ in range(limit):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) == 2:
                envelope, payload = frames[:1], frames[1]
            elif len(frames) == 3 and frames[1] == b"":  # a REQ peer's envelope
                envelope, payload = frames[:2], frames[2]
            else:
                self._misshapen.warning("rogue message on the control socket: %d frames, dropped", len(frames))
                continue
            message = self._decode.or_drop(payload)
            if message is not None:
                yield envelope, message

    def reply(self, envelope: list[bytes], message) -> None:
        """Answer one request; a requester that left meanwhile is simply not answered."""
        try:
            self.socket.send_multipart([*envelope, wire.encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("cannot answer on the control socket: %s", exc)

    def close(self) -> None:
        self.socket.close(linger=0)
