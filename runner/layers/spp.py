"""SPP (Caffe SPPLayer): spatial pyramid pooling. Level l (0 <= l < pyramid_height) pools the
(N, C, H, W) bottom with 2**l bins per side: kernel = ceil(H / bins), pad = (kernel*bins - H + 1)
// 2, stride = kernel (the same for W; ``netdef.shapes.spp_level``), by Caffe's Pooling rules
(MAX, AVE or STOCHASTIC, ceil rounding). The top is the levels flattened to (N, C*PH_l*PW_l) and
concatenated along axis 1 in level order, (N, sum_l C*PH_l*PW_l); with pyramid_height 1 it is the
one level's (N, C, PH, PW), as Caffe runs that pooling layer alone.

Backward: each level's pooling backward, summed over the levels in order (Caffe's Split). The
levels run on the existing pooling ops and Concat's ops, so both backends run it unchanged."""
from __future__ import annotations

from proto import caffe_pb2 as pb
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


@register("SPP")
class SPPLayer(Layer):
    replayable = True

    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        p = self.param.spp_param
        self.pool = int(p.pool)
        self.stochastic = self.pool == pb.SPPParameter.STOCHASTIC
        if self.stochastic:
            self.seed = int(self.rng.integers(0, 2**31 - 1))
            self.counter = 0
            if self.phase == "TRAIN":
                self.replayable = False      # the stream advances every TRAIN forward

    def get_rng_state(self):
        return self.counter if self.stochastic and self.phase == "TRAIN" else None

    def set_rng_state(self, state) -> None:
        if self.stochastic and state is not None:
            self.counter = int(state)

    def on_reshape(self, bottoms, tops, shapes) -> None:
        be = self.backend
        self.levels = shapes.geometry            # one PoolGeometry per level (netdef.shapes)
        self.single = len(self.levels) == 1
        shp = [(g.n, g.c, g.out_h, g.out_w) for g in self.levels]
        keeps_index = self.pool == pb.SPPParameter.MAX or (self.stochastic and self.phase == "TRAIN")
        self.masks = [be.empty(s, dtype="int32") if keeps_index else None for s in shp]
        if self.single:
            self.outs = self.douts = []
            return
        self.outs = [be.empty(s) for s in shp]
        self.douts = [be.empty(s) for s in shp]
        self.scratch = be.empty(bottoms[0].shape)
        self.dims = [s[1] * s[2] * s[3] for s in shp]

    def _pool_fwd(self, level: int, x, y) -> None:
        be, g, m = self.backend, self.levels[level], self.masks[level]
        if self.pool == pb.SPPParameter.MAX:
            be.max_pool_fwd(x, y, m, g)
        elif self.pool == pb.SPPParameter.AVE:
            be.ave_pool_fwd(x, y, g)
        elif self.phase == "TRAIN":
            be.sto_pool_fwd_train(x, y, m, g, self.seed, self.counter * len(self.levels) + level)
        else:
            be.sto_pool_fwd_test(x, y, g)

    def _pool_bwd(self, level: int, dy, dx) -> None:
        be, g, m = self.backend, self.levels[level], self.masks[level]
        if self.pool == pb.SPPParameter.MAX:
            be.max_pool_bwd(dy, m, dx, g)
        elif self.pool == pb.SPPParameter.AVE:
            be.ave_pool_bwd(dy, dx, g)
        elif self.phase == "TRAIN":
            be.sto_pool_bwd(dy, m, dx, g)
        else:
            raise self.error("STOCHASTIC pooling has a backward only in TRAIN")

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        x = bottoms[0].dev_data
        if self.single:
            self._pool_fwd(0, x, tops[0].dev_data)
        else:
            for level, y in enumerate(self.outs):
                self._pool_fwd(level, x, y)
            n = self.levels[0].n
            self.backend.concat_fwd(self.outs, tops[0].dev_data, n, self.dims, 1)
        if self.stochastic and self.phase == "TRAIN":
            self.counter += 1

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        be = self.backend
        dx = bottoms[0].dev_diff
        if self.single:
            self._pool_bwd(0, tops[0].dev_diff, dx)
            return
        be.concat_bwd(tops[0].dev_diff, self.douts, self.levels[0].n, self.dims, 1)
        for level, dy in enumerate(self.douts):
            if level == 0:
                self._pool_bwd(0, dy, dx)
            else:
                self._pool_bwd(level, dy, self.scratch)
                be.axpy(1.0, self.scratch, dx)
