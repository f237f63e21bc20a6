"""An fsynced append-only spool: what the receiver acknowledged survives a crash.

The OTLP receiver answers 200 only once a request is *durable*. Writing every request to
the warehouse before answering would make each sender wait for a transaction, so the
receiver appends the request to this spool instead, and answers when the append is on
disk (``fsync``); a background flush then writes many requests in one transaction and
marks them done. After a crash (even SIGKILL) the next start replays every segment that
still exists; replaying is harmless because rows upsert by their request id.

Layout: ``<dir>/segment-<n>.otlp`` files of records ``magic, length, crc32, body``. Appends
go to the newest segment, group-committed (one ``fsync`` for all the records waiting, so
concurrent senders share it); a segment is closed after :attr:`Spool.segment_bytes` or
:attr:`Spool.segment_age_s`, and deleted once it is closed and all its records are in the
warehouse. A torn last record (the process died mid-write, so it was never acknowledged)
is skipped on replay.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO

from auterity.errors import ConfigError

log = logging.getLogger("auterity.ingest.spool")

MAGIC = b"OTS1"
_HEADER = struct.Struct(">4sII")
_PATTERN = "segment-*.otlp"


def _segment_number(path: Path) -> int:
    """The number in ``segment-<n>.otlp``."""
    return int(path.stem.split("-", 1)[1])


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation or removal in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path) -> Iterator[bytes]:
    """The complete records of a segment, in order (a torn or corrupt tail ends it)."""
    data = path.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        body = data[start : start + length]
        if magic != MAGIC or len(body) != length or zlib.crc32(body) != crc:
            log.warning("spool %s: unreadable record at byte %d; the rest is skipped", path, offset)
            return
        yield body
        offset = start + length


class Spool:
    """The receiver's durable queue of acknowledged requests.

    Parameters
    ----------
    directory : Path
        Where the segments live (created if missing; must be writable).
    segment_bytes : int
        Size after which the current segment is closed.
    segment_age_s : float
        Age after which the current segment is closed, so flushed data is deleted soon.
    """

    def __init__(
        self, directory: Path, *, segment_bytes: int = 32 << 20, segment_age_s: float = 2.0
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"spool directory {self.directory} is not usable: {exc.strerror or exc}"
            ) from None
        existing = sorted(self.directory.glob(_PATTERN), key=_segment_number)
        self._leftover = existing
        self._next = (_segment_number(existing[-1]) + 1) if existing else 1
        self._lock = threading.Condition()
        self._waiting: list[tuple[bytes, Future[int]]] = []
        self._pending: Counter[int] = Counter()
        self._closed: set[int] = set()
        self._file: BinaryIO | None = None
        self._current = 0
        self._current_size = 0
        self._current_opened = 0.0
        self._stop = False
        self._writer = threading.Thread(target=self._write_loop, name="auterity-spool", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------ replay

    def leftovers(self) -> Iterator[tuple[int, bytes]]:
        """``(segment, body)`` of every record a previous run left unfinished.

        Each is counted as pending in its segment; call :meth:`done` once it is in the
        warehouse and the segment file goes away.
        """
        for path in self._leftover:
            number = _segment_number(path)
            records = list(read_segment(path))
            with self._lock:
                self._closed.add(number)
                self._pending[number] += len(records)
            if not records:
                self._delete(number)
            yield from ((number, body) for body in records)
        self._leftover = []

    # ------------------------------------------------------------------ appends

    def append(self, body: bytes) -> Future[int]:
        """Queue ``body`` for the next group commit.

        Returns
        -------
        Future of int
            Resolves to the record's segment once it is fsynced (or to the OSError).
        """
        future: Future[int] = Future()
        with self._lock:
            if self._stop:
                raise RuntimeError("the spool is closed")
            self._waiting.append((body, future))
            self._lock.notify_all()
        return future

    def _path(self, number: int) -> Path:
        return self.directory / f"segment-{number:012d}.otlp"

    def _close_current(self) -> None:
        """Close the current segment; delete it if all its records are done (writer only)."""
        assert self._file is not None
        self._file.close()
        self._file = None
        with self._lock:
            self._closed.add(self._current)
            finished = self._pending[self._current] == 0
        if finished:
            self._delete(self._current)

    def _open_next(self) -> BinaryIO:
        """Open the next segment (writer thread only)."""
        self._current = self._next
        self._next += 1
        self._file = open(self._path(self._current), "ab")  # noqa: SIM115 (kept open)
        _fsync_dir(self.directory)
        self._current_size = 0
        self._current_opened = time.monotonic()
        return self._file

    def _write_loop(self) -> None:
        """Writer thread: write what is waiting, fsync once, resolve the futures."""
        while True:
            with self._lock:
                if not self._waiting and not self._stop:
                    self._lock.wait(timeout=self.segment_age_s / 2)
                batch, self._waiting = self._waiting, []
                stopping = self._stop and not batch
            try:
                if self._file is not None and (stopping or self._segment_expired()):
                    self._close_current()
                if stopping:
                    return
                if not batch:
                    continue
                f = self._file or self._open_next()
                for body, _ in batch:
                    f.write(_HEADER.pack(MAGIC, len(body), zlib.crc32(body)))
                    f.write(body)
                    self._current_size += _HEADER.size + len(body)
                f.flush()
                os.fsync(f.fileno())
            except OSError as exc:
                log.error("spool write failed: %s", exc)
                for _, future in batch:
                    future.set_exception(exc)
                continue
            with self._lock:
                self._pending[self._current] += len(batch)
            for _, future in batch:
                future.set_result(self._current)

    def _segment_expired(self) -> bool:
        return (
            self._current_size >= self.segment_bytes
            or time.monotonic() - self._current_opened >= self.segment_age_s
        )

    # ------------------------------------------------------------------ completion

    def done(self, segments: Counter[int]) -> None:
        """Mark records as written to the warehouse; finished closed segments are deleted.

        Parameters
        ----------
        segments : Counter
            Records done per segment.
        """
        finished = []
        with self._lock:
            for number, count in segments.items():
                self._pending[number] -= count
                if self._pending[number] <= 0 and number in self._closed:
                    finished.append(number)
        for number in finished:
            self._delete(number)

    def _delete(self, number: int) -> None:
        with self._lock:
            self._pending.pop(number, None)
            self._closed.discard(number)
        try:
            self._path(number).unlink(missing_ok=True)
            _fsync_dir(self.directory)
        except OSError as exc:  # replayed again next start: harmless, rows upsert
            log.warning("spool: could not delete %s: %s", self._path(number), exc)

    def pending(self) -> int:
        """Records acknowledged but not yet in the warehouse."""
        with self._lock:
            return sum(self._pending.values())

    def close(self) -> None:
        """Finish the waiting appends and stop the writer (segments stay for the next start)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._writer.join(timeout=10)
