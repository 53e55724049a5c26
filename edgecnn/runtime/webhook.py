"""Events to an HTTP endpoint: one POST of the event's JSON each, in order, with retries.

Events go through the on-disk `outbox.Outbox`; a failed POST (no connection, a timeout, a 5xx,
408 or 429) is retried after an exponential backoff (0.5 s doubling to 30 s) and nothing behind it
goes first. Delivery is at-least-once: the `Idempotency-Key` header (and the body's `id`) is the
event's stable id. Any other 4xx is the endpoint refusing this event for good: it is dropped,
counted in `rejected` and logged, so one bad event cannot stall the queue forever.

`user:password@` in the URL becomes a Basic `Authorization` header; the URL is shown without it and
without its query (which may hold a token).
"""

from __future__ import annotations

import base64
import logging
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from edgecnn.config import ConfigError
from edgecnn.runtime.events import Event
from edgecnn.runtime.outbox import Courier, Outbox
from edgecnn.runtime.sources import without_credentials

LOG = logging.getLogger("edgecnn.webhook")
TIMEOUT_S = 5.0
RETRY_STATUS = {408, 429}


class WebhookSink:
    """The `EventSink` for an HTTP(S) endpoint (`publish_counts` sends nothing: counts ride on MQTT)."""

    def __init__(self, url: str, queue_path: str | os.PathLike, queue_max: int = 10_000, key: str = "webhook"):
        parts = urlsplit(str(url))
        # the query may carry a token too (?key=…): shown without it
        self.shown = without_credentials(urlunsplit(parts._replace(query="…" if parts.query else "")))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{key}={self.shown}: a webhook is an http:// or https:// URL")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self.headers = {"Content-Type": "application/json", "User-Agent": "edgecnn"}
        if parts.username:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self.rejected = 0
        self.outbox = Outbox(queue_path, queue_max, f"{key} {self.shown}")
        self.courier = Courier(self.outbox, self._send)

    def publish(self, event: Event) -> None:
        self.outbox.put(event.id, event.to_json())

    def publish_counts(self, camera: str, counts: dict[str, Any], epoch: float) -> None:
        pass

    def _send(self, messages: list[tuple[str, str]]) -> int:
        for done, (event_id, payload) in enumerate(messages):
            if not self._post(event_id, payload):
                return done
        return len(messages)

    def _post(self, event_id: str, payload: str) -> bool:
        """True when the event is delivered (or refused for good); False to retry later."""
        request = urllib.request.Request(self.url, payload.encode(), {**self.headers, "Idempotency-Key": event_id},
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
            return True
        except urllib.error.HTTPError as err:
            if 400 <= err.code < 500 and err.code not in RETRY_STATUS:
                self.rejected += 1
                LOG.error("webhook %s refused event %s with HTTP %d; dropped (%d refused in all)",
                          self.shown, event_id, err.code, self.rejected)
                return True
            LOG.warning("webhook %s answered HTTP %d; retrying", self.shown, err.code)
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            LOG.warning("webhook %s unreachable (%s); retrying", self.shown, without_credentials(str(reason)))
        return False

    def close(self) -> None:
        self.courier.close()
