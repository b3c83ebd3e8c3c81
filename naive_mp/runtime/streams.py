"""PUB/SUB sockets set up the one way every process needs them.

High-water marks are set on purpose: publishers and subscribers keep up to
HWM messages (batches of trades) per peer, far above a day's replay at full
speed, so nothing is dropped silently; every stream carries sequence
numbers, so a loss that still happens is counted and logged. Publishers are
XPUBs that greet each new subscription with a `Welcome` on its topic: a
subscriber that has received it knows it is live (no slow-joiner loss).
Message sizes are bounded as on every socket (naive_mp.runtime.sockets).
"""

import zmq

from naive_mp import wire
from naive_mp.runtime import sockets

HWM = 100_000


def publisher(ctx: zmq.Context, address: str) -> zmq.Socket:
    """An XPUB bound at `address` that passes every subscription up (to be welcomed)."""
    pub = sockets.make(ctx, zmq.XPUB, sndhwm=HWM)  # what comes in is subscriptions: a few per peer
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.bind(address)
    return pub


def welcome(pub: zmq.Socket, ended: dict[str, int] | None = None) -> bytes | None:
    """Answer the subscription message waiting on `pub` with a Welcome on its topic.

    `ended` maps the topics (symbols) whose stream is over to their last seq.
    Returns the topic subscribed to (None for an unsubscription).
    """
    message = pub.recv()
    if message[:1] != b"\x01":
        return None
    topic = message[1:].decode(errors="replace")
    last_seq = (ended or {}).get(topic.strip())
    pub.send(message[1:] + wire.encode(wire.Welcome(topic=topic, last_seq=last_seq)))
    return message[1:]


def subscriber(ctx: zmq.Context, address: str, topics: list[bytes]) -> zmq.Socket:
    """A SUB connected to `address` for `topics` (not yet known to be live)."""
    sub = sockets.make(ctx, zmq.SUB, rcvhwm=HWM)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(address)
    for topic in topics:
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    return sub
