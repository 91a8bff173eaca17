"""Background prefetching of batches (Caffe's BasePrefetchingDataLayer): a thread computes batches
k, k+1, ... of a source into a bounded queue while the net runs. ``get(k)`` returns batch k; asking
for a batch other than the next prefetched one (a seek, e.g. after restoring a solver) restarts the
thread from k. Errors in the thread are re-raised in the caller. ``close()`` stops it cleanly."""
from __future__ import annotations

import queue
import threading


class Prefetcher:
    """Prefetch ``source.batch(k)`` for increasing k in a daemon thread (``depth`` batches ahead)."""

    def __init__(self, source, depth: int = 4):
        self.source = source
        self.depth = max(1, int(depth))
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._next = None

    def _run(self, start: int, q: queue.Queue, stop: threading.Event) -> None:
        k = start
        while not stop.is_set():
            try:
                item = (k, self.source.batch(k), None)
            except BaseException as e:  # handed to the consumer
                item = (k, None, e)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            k += 1

    def _start(self, k: int) -> None:
        self._shutdown()
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._run, args=(k, self._queue, self._stop),
                                        name="nbcaffe-prefetch", daemon=True)
        self._thread.start()
        self._next = k

    def get(self, k: int):
        """Batch k (list of arrays); blocks until it is ready."""
        if self._thread is None or self._next != k:
            self._start(k)
        got, arrays, err = self._queue.get()
        if err is not None:
            self._thread = None
            raise err
        assert got == k
        self._next = k + 1
        return arrays

    def _shutdown(self) -> None:
        if self._thread is not None:
            self._stop.set()
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop the thread (waits for the batch in progress)."""
        self._shutdown()
