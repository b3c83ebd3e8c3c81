"""The user data stream over Binance's WS-API: our fills, watched and rebuilt.

The listenKey stream was retired (2026-02-20); fills now come over the WS-API,
`userDataStream.subscribe.signature`, one subscription per connection, which
dies with it. python-binance does not subscribe again after a reconnect and
its `recv()` then stays silent for ever, so this thread owns the connection
(the `websockets` library python-binance itself uses):

- connect, subscribe (signed with HMAC-SHA256), then hand every
  `executionReport` to the gateway;
- watch it: an application `ping` every `silence_s / 2` must be answered
  within `silence_s` (a dead link, or a server that no longer speaks, is
  noticed), and the connection is rebuilt before `max_age_s` (Binance cuts
  every connection after 24 h);
- after every (re)subscription, say `Subscribed`: the gateway then asks
  Binance over REST about every open order, so nothing that happened while
  the stream was down is missed.
"""

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

log = logging.getLogger("naive_mp.user_stream")

OPEN_TIMEOUT_S = 10.0
MAX_FRAME = 1 << 20
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class Subscribed:
    """A subscription is live (again): whatever happened before it must be asked for over REST."""

    connection: int


@dataclass(frozen=True)
class StreamDown:
    reason: str


@dataclass(frozen=True)
class ExecutionReport:
    report: dict


class SubscribeRefused(Exception):
    """The WS-API said no to our subscription (bad key or signature, clock): said, then tried again."""


def signed_params(key: str, secret: str, timestamp_ms: int) -> dict:
    """WS-API signature: HMAC-SHA256 over the parameters sorted by name, as `k=v&k=v`."""
    params = {"apiKey": key, "timestamp": timestamp_ms}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()}


class UserStream(threading.Thread):
    def __init__(self, key: str, secret: str, ws_api_url: str, post: Callable[[object], None], *,
                 silence_s: float = 30.0, max_age_s: float = 23 * 3600, clock_ms: Callable[[], int] | None = None):
        super().__init__(name="user-stream", daemon=True)
        self.key, self.secret, self.url, self.post = key, secret, ws_api_url, post
        self.silence_s, self.max_age_s = silence_s, max_age_s
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.stop = threading.Event()
        self.ids = itertools.count(1)
        self.connections = 0

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self._session()
                failures = 0
            except (WebSocketException, OSError, TimeoutError, SubscribeRefused, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("user data stream down (%s); rebuilding it", reason)
                self.post(StreamDown(reason))
                failures += 1
            except Exception as exc:  # noqa: BLE001 - a bug, or an answer we did not foresee: never a dead thread
                log.exception("user data stream: unexpected %s; rebuilding it", type(exc).__name__)
                self.post(StreamDown(f"{type(exc).__name__}: {exc}"))
                failures += 1
            self.stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)] if failures else 0)

    def _session(self) -> None:
        """One connection, from subscribe to its end (ours, the server's, or a silence)."""
        with connect(self.url, open_timeout=OPEN_TIMEOUT_S, max_size=MAX_FRAME, ping_interval=None,
                     close_timeout=1) as ws:
            self._subscribe(ws)
            self.connections += 1
            self.post(Subscribed(self.connections))
            opened = last_heard = time.monotonic()
            pending_ping: tuple[int, float] | None = None
            while not self.stop.is_set():
                now = time.monotonic()
                if now - opened > self.max_age_s:
                    log.info("user data stream: rebuilt before Binance's connection age limit")
                    return
                if pending_ping and now - pending_ping[1] > self.silence_s:
                    raise TimeoutError(f"no answer to a ping in {self.silence_s:g} s: the connection is dead")
                if pending_ping is None and now - last_heard > self.silence_s / 2:
                    pending_ping = (self._send(ws, "ping", {}), now)
                try:
                    frame = ws.recv(timeout=min(0.5, self.silence_s / 4))
                except TimeoutError:
                    continue
                last_heard = time.monotonic()
                message = self._decode(frame)
                if message is None:
                    continue
                if pending_ping and message.get("id") == pending_ping[0]:
                    pending_ping = None
                self._on_message(message)

    def _send(self, ws, method: str, params: dict) -> int:
        request_id = next(self.ids)
        ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        return request_id

    def _subscribe(self, ws) -> None:
        request_id = self._send(ws, "userDataStream.subscribe.signature",
                                signed_params(self.key, self.secret, self.clock_ms()))
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while time.monotonic() < deadline:
            message = self._decode(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message is None or message.get("id") != request_id:
                continue
            if message.get("status") == 200:
                result = message.get("result")
                log.info("user data stream subscribed (subscription %s)",
                         result.get("subscriptionId") if isinstance(result, dict) else "?")
                return
            error = message.get("error")
            raise SubscribeRefused(f"{error.get('code')} {error.get('msg')}" if isinstance(error, dict) else
                                   f"status {message.get('status')}: {str(error)[:200]}")
        raise TimeoutError("no answer to the user data stream subscription")

    @staticmethod
    def _decode(frame) -> dict | None:
        try:
            message = json.loads(frame)
        except (TypeError, ValueError):
            log.warning("user data stream: a frame that is not JSON, dropped (%.80r)", frame)
            return None
        return message if isinstance(message, dict) else None

    def _on_message(self, message: dict) -> None:
        event = message.get("event")
        if not isinstance(event, dict):
            return  # an answer to one of our requests
        kind = event.get("e")
        if kind == "executionReport":
            self.post(ExecutionReport(event))
        elif kind == "eventStreamTerminated":
            raise ConnectionResetError("Binance ended the subscription (eventStreamTerminated)")

    def close(self) -> None:
        self.stop.set()
