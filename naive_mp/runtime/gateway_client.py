"""Requests to the gateway that survive a dead or restarted gateway.

A DEALER with a poll timeout, never a REQ that a dead peer leaves stuck:
each request carries an id, is sent again with the same id when no answer
comes in time, and stale answers are dropped. Placing is idempotent at the
gateway (by client order id), so a resend never places twice.
"""

import logging

import zmq

from naive_mp import wire
from naive_mp.core.messages import PlaceOrder
from naive_mp.runtime import sockets

log = logging.getLogger("naive_mp.gateway_client")

TIMEOUT_S = 2.0
ATTEMPTS = 5


class GatewayUnavailable(RuntimeError):
    """The gateway did not answer one request in ATTEMPTS * TIMEOUT_S."""


class GatewayClient:
    def __init__(self, ctx: zmq.Context, run_dir: str, *, timeout_s: float = TIMEOUT_S, attempts: int = ATTEMPTS):
        self.timeout_s, self.attempts = timeout_s, attempts
        self.socket = sockets.make(ctx, zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(wire.address(run_dir, "gateway"))
        self.decode = wire.Decoder("gateway", wire.GatewayReply)
        self.req_id = 0

    def place(self, order: PlaceOrder, cause_ns: int = 0) -> wire.GatewayReply:
        """The order as placed (or as it already was), or the exchange's refusal."""
        return self._call(lambda req_id: wire.Place(req_id=req_id, order=order, cause_ns=cause_ns))

    def query(self, client_order_id: str) -> wire.OrderInfo | None:
        """The order with this client id, or None when the exchange has none."""
        return self._call(lambda req_id: wire.Query(req_id=req_id, client_order_id=client_order_id)).order

    def cancel(self, client_order_id: str) -> wire.GatewayReply:
        return self._call(lambda req_id: wire.Cancel(req_id=req_id, client_order_id=client_order_id))

    def _call(self, build) -> wire.GatewayReply:
        self.req_id += 1
        frame = wire.encode(build(self.req_id))
        for attempt in range(1, self.attempts + 1):
            self.socket.send(frame)
            reply = self._wait(self.req_id)
            if reply is not None:
                return reply
            log.warning("gateway silent for %.1f s (attempt %d of %d)", self.timeout_s, attempt, self.attempts)
        raise GatewayUnavailable(f"no answer from the gateway in {self.attempts * self.timeout_s:.0f} s")

    def _wait(self, req_id: int) -> wire.GatewayReply | None:
        while self.socket.poll(self.timeout_s * 1000):
            reply = self.decode(self.socket.recv())
            if reply.req_id == req_id:
                return reply
        return None
