"""Every zmq socket of a run is made here, with its limits: a bound on message size and deliberate HWMs.

Whoever can reach a bound socket (ROUTER, XPUB, PULL) can send it anything,
and libzmq takes in a whole message before the process sees it: one 100 MB
frame grew the gateway to 1.45 GB. With ZMQ_MAXMSGSIZE, a peer that sends a
bigger message is disconnected as soon as its size is read, before anything is
allocated. A legitimate peer never comes near the bound:

- a TradeBatch of 256 trades (streamer.BATCH), every field at its largest:
  about 12 KB;
- a leader's Heartbeat names each of its traders in about 141 bytes: 1,000
  traders (each one an OS process) take about 141 KB;
- a Crossed names each fill of one trade (at most one per trader), a
  Report/RebuyNotice/Done carries one TraderState: under 1 KB;
- a RunSpec, the largest struct, is never sent: children get it through fork.

So 1 MiB leaves a margin of 80 over the largest trade message, and room for
about 7,000 traders per symbol (tests/runtime/test_sockets.py computes these).

High-water marks count messages per peer, so they bound what a peer can queue
(at most HWM x MAX_MESSAGE_BYTES). The trade and update streams keep a deep
queue on purpose (streams.HWM: a burst must not be dropped silently); every
other socket carries requests, acks and heartbeats, a few at a time per peer.
"""

import zmq

MAX_MESSAGE_BYTES = 1 << 20
REQUEST_HWM = 1_000  # per peer: requests, replies, acks, subscriptions (each peer has a few in flight)


def make(ctx: zmq.Context, kind: int, *, sndhwm: int = REQUEST_HWM, rcvhwm: int = REQUEST_HWM) -> zmq.Socket:
    """A socket of `kind` with the run's message size bound and these HWMs (set before bind/connect)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    return sock
