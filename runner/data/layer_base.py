"""Shared machinery of the prefetching data layers (Data, ImageData, HDF5Data): a batch source
(runner/data/sources.py) behind a Prefetcher, a batch counter the solver can ``seek``, and the
copy of each batch into the top blobs."""
from __future__ import annotations

import numpy as np

from runner.layers.base import Layer


class PrefetchingDataLayer(Layer):
    """Caffe's BasePrefetchingDataLayer: tops come from ``source.batch(k)`` for k = 0, 1, ...

    ``seek(k)`` makes the next forward produce batch k (the solver uses it to resume exactly);
    ``batch_index`` is the next batch's index. ``close()`` stops the prefetch thread.
    ``data_seed`` (drawn from the Net's generator at setup unless set before) seeds crops, mirrors
    and shuffles, so batches depend only on (seed, k).
    """

    prefetch_depth = 4
    _shard = (0, 1)         # (rank, size) of a data-parallel run: set_shard
    source = None

    def make_source(self, seed: int):
        raise NotImplementedError

    def setup(self, bottoms, tops) -> None:
        from runner.data.prefetch import Prefetcher
        if bottoms:
            raise self.error("data layers take no bottom blobs")
        if getattr(self, "data_seed", None) is None:
            self.data_seed = int(self.rng.integers(0, 2**62))
        self.source = self.make_source(self.data_seed)
        shapes = self.source.top_shapes()
        if len(shapes) != len(tops):
            raise self.error(f"the source gives {len(shapes)} arrays for {len(tops)} tops")
        self.prefetcher = Prefetcher(self.source, self.prefetch_depth)
        self.batch_index = 0

    def top_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the tops as the data source determines them."""
        return self.source.top_shapes()

    def reshape(self, bottoms, tops) -> None:
        for t, s in zip(tops, self.source.top_shapes()):
            if t.shape != tuple(s):
                t.reshape(s)

    def seek(self, k: int) -> None:
        """The next forward produces batch ``k``."""
        self.batch_index = int(k)

    def set_shard(self, rank: int, size: int) -> None:
        """Read this rank's share of the stream in a data-parallel run of ``size`` ranks
        (runner.data.sources: the ranks' batches together are one size-times-larger batch)."""
        self.prefetcher.close()             # batches prefetched for the old shard are stale
        self._shard = (int(rank), int(size))
        self.source.shard = self._shard

    @property
    def setup_messages(self) -> list[str]:
        """What Caffe's data layer logs while it sets up (the Net writes it when it logs)."""
        return list(getattr(self.source, "messages", ()))

    def get_stream_state(self) -> dict:
        """Everything the batches after this point depend on: the seed of shuffles, crops,
        mirrors and rand_skip, and the next batch's index (saved in a snapshot, so that a resumed
        run reads exactly the batches an uninterrupted run would)."""
        return {"seed": int(self.data_seed), "batch": int(self.batch_index)}

    def set_stream_state(self, state: dict) -> None:
        """Restore ``get_stream_state``'s record (a new seed rebuilds the source)."""
        seed = int(state["seed"])
        if seed != self.data_seed:
            self.close()
            self.data_seed = seed
            from runner.data.prefetch import Prefetcher
            self.source = self.make_source(seed)
            self.source.shard = self._shard
            self.prefetcher = Prefetcher(self.source, self.prefetch_depth)
        self.batch_index = int(state["batch"])

    def forward(self, bottoms, tops) -> None:
        arrays = self.prefetcher.get(self.batch_index)
        self.batch_index += 1
        for t, a in zip(tops, arrays):
            if self.backend.host_mirror:
                self.backend.to_device(np.ascontiguousarray(a, dtype=np.float32), out=t.dev_data)
            else:
                t.dev_data[...] = a

    def backward(self, tops, propagate_down, bottoms) -> None:
        pass

    def close(self) -> None:
        """Stop the prefetch thread and release the source."""
        if getattr(self, "prefetcher", None) is not None:
            self.prefetcher.close()
            self.prefetcher = None
        if self.source is not None:
            self.source.close()

    def __del__(self):
        try:
            if getattr(self, "prefetcher", None) is not None:
                self.prefetcher.close()
        except Exception:
            pass
