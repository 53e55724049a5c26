"""A bounded on-disk queue of messages and the thread that delivers them in order: what lets events
wait while a broker or a webhook endpoint is away.

Every message goes through the queue, connected or not, so order is one rule: the oldest message is
sent first, and it leaves the queue only once the far side has acknowledged it. A message sent
whose acknowledgement was lost is sent again: delivery is at-least-once, and consumers drop
duplicates by the event's `id`.

The queue is an SQLite file (stdlib `sqlite3`) in WAL mode with `synchronous=NORMAL`: each message
is its own committed transaction, so a crash of the process (or a kill -9, or systemd's restart)
loses nothing; a power cut may lose the last messages since SQLite's last fsync (WAL checkpoint),
never the file. Syncing every commit (`FULL`) would cost an fsync per event on an SD card.

The bound is a number of messages (`max_items`): past it the oldest are dropped, counted in
`dropped` and logged, so the newest events survive a long outage.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

LOG = logging.getLogger("edgecnn.outbox")
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 30.0
DROP_LOG_EVERY_S = 10.0  # a long outage drops on every event: one warning per this many seconds


class Outbox:
    """FIFO of (topic, payload) strings in an SQLite file, at most `max_items` long."""

    def __init__(self, path: str | Path, max_items: int = 10_000, name: str = "outbox"):
        if max_items < 1:
            raise ValueError(f"{name}: the queue bound must be >= 1 message, got {max_items}")
        self.path, self.max_items, self.name = Path(path), max_items, name
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._owner = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 (held until close)
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(f"{name}: its queue {self.path} is in use by another process; give each process its "
                          "own queue_dir= (or camera=)") from None
        except OSError as err:
            raise OSError(f"{name}: cannot open its queue file {self.path}: {err}") from None
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "topic TEXT NOT NULL, payload TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as err:
            raise OSError(f"{name}: cannot open its queue file {self.path}: {err}") from None
        self._lock = threading.Lock()
        self.ready = threading.Condition(self._lock)  # notified on every put
        self.dropped = 0
        self._dropped_logged, self._last_drop_log = 0, 0.0

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]

    def put(self, topic: str, payload: str) -> None:
        """Queue a message; a queue that cannot be written (its disk is full) drops it, counted."""
        with self._lock:
            try:
                self._db.execute("INSERT INTO queue (topic, payload) VALUES (?, ?)", (topic, payload))
                over = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] - self.max_items
                if over > 0:
                    self._db.execute("DELETE FROM queue WHERE seq IN (SELECT seq FROM queue ORDER BY seq LIMIT ?)",
                                     (over,))
            except sqlite3.Error as err:
                LOG.error("%s: cannot write its queue %s (%s): message dropped", self.name, self.path, err)
                over = 1
            if over > 0:
                self.dropped += over
                self._log_drops()
            self.ready.notify_all()

    def _log_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_EVERY_S:
            LOG.warning("%s: queue full (%d messages): dropped the %d oldest (%d in all)", self.name,
                        self.max_items, self.dropped - self._dropped_logged, self.dropped)
            self._dropped_logged, self._last_drop_log = self.dropped, now

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a message; True when the queue holds one."""
        with self.ready:
            if self._empty():
                self.ready.wait(timeout)
            return not self._empty()

    def _empty(self) -> bool:
        return self._db.execute("SELECT 1 FROM queue LIMIT 1").fetchone() is None

    def head(self, n: int) -> list[tuple[int, str, str]]:
        """The oldest `n` messages as (seq, topic, payload), oldest first."""
        with self._lock:
            return self._db.execute("SELECT seq, topic, payload FROM queue ORDER BY seq LIMIT ?", (n,)).fetchall()

    def remove(self, seqs: Sequence[int]) -> None:
        """Delivered messages leave the queue."""
        with self._lock:
            self._db.executemany("DELETE FROM queue WHERE seq = ?", [(s,) for s in seqs])

    def close(self) -> None:
        with self._lock:
            if self.dropped > self._dropped_logged:
                LOG.warning("%s: dropped %d messages in all (queue bound %d)", self.name, self.dropped, self.max_items)
                self._dropped_logged = self.dropped
            self._db.close()
            self._owner.close()  # releases the lock


class Courier:
    """A thread that sends the outbox's head with `send` and removes what it delivered.

    `send(messages)` gets up to `batch` (topic, payload) pairs, oldest first, and returns how many of
    them, from the first, were acknowledged; fewer than all (or an exception) is a failure, retried
    after an exponential backoff (0.5 s doubling to 30 s) from the first unacknowledged message.
    """

    def __init__(self, outbox: Outbox, send: Callable[[list[tuple[str, str]]], int], batch: int = 32):
        self.outbox, self._send, self.batch = outbox, send, batch
        self.delivered = self.failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"courier:{outbox.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Retry now (the far side is back) instead of after the backoff."""
        self._wake.set()
        with self.outbox.ready:
            self.outbox.ready.notify_all()

    def _run(self) -> None:
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            if not self.outbox.wait(timeout=1.0):
                continue
            if self._deliver_head():
                delay = BACKOFF_START_S
                continue
            self.failures += 1
            self._wake.wait(delay)
            self._wake.clear()
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _deliver_head(self) -> bool:
        head = self.outbox.head(self.batch)
        try:
            done = self._send([(topic, payload) for _, topic, payload in head])
        except Exception as err:  # a sink's transport error: the messages stay queued
            LOG.debug("%s: send failed: %s", self.outbox.name, err)
            done = 0
        self.outbox.remove([seq for seq, _, _ in head[:done]])
        self.delivered += done
        return done == len(head)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queue to empty (one retry now, then the backoff's)."""
        end = time.monotonic() + timeout
        self.wake()
        while len(self.outbox) and time.monotonic() < end:
            time.sleep(0.02)
        return not len(self.outbox)

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what can go within `timeout`; the rest stays on disk for the next start."""
        self.flush(timeout)
        self._stop.set()
        self.wake()
        self._thread.join(timeout=timeout + 5)
        left = len(self.outbox)
        if left:
            LOG.warning("%s: %d messages stay queued in %s for the next start", self.outbox.name, left, self.outbox.path)
        self.outbox.close()
