"""BatchNorm (Caffe BatchNormLayer): y = (x - mean) / sqrt(var + eps) per channel (axis 1).
Three parameter blobs, never learned (lr_mult 0): running mean sum (C,), running variance sum (C,),
and the moving-average scale factor (1,). ``use_global_stats`` (default: true in TEST) normalises
with mean = blob0 / blob2, var = blob1 / blob2 (0 when blob2 == 0); otherwise with the batch's
biased statistics, and then updates blob2 = maf * blob2 + 1, blob0 = mean + maf * blob0,
blob1 = m/(m-1) * var + maf * blob1 (m = N*H*W; ``moving_average_fraction`` maf default .999).
``eps`` default 1e-5. Backward (Caffe): dx = (dy - mean(dy) - y * mean(dy * y)) / sqrt(var + eps),
or dy / sqrt(var + eps) with global stats. The normalised y is kept aside, so an in-place
Scale after an in-place BatchNorm does not corrupt the backward."""
from __future__ import annotations

from netdef.shapes import count
from runner.layers.base import Layer
from runner.registry import register


@register("BatchNorm")
class BatchNormLayer(Layer):
    def setup(self, bottoms, tops) -> None:
        p = self.param.batch_norm_param
        self.maf = float(p.moving_average_fraction)
        self.use_global = bool(p.use_global_stats) if p.HasField("use_global_stats") else self.phase == "TEST"
        self.eps = float(p.eps)
        shapes = self.infer(bottoms)
        for ps, what in zip(shapes.param_shapes, ("mean", "variance", "scale_factor")):
            self.add_param(ps, None, what)
        for i in range(len(self.blobs)):
            self.param_propagate_down[i] = False

    def on_reshape(self, bottoms, tops, shapes) -> None:
        s = bottoms[0].shape
        self.n = s[0]
        self.c = s[1] if len(s) > 1 else 1
        self.s = count(s, 2)
        be = self.backend
        self.mean = be.empty((self.c,))
        self.var = be.empty((self.c,))
        self.inv_std = be.empty((self.c,))
        self.x_norm = be.empty(s)

    def forward(self, bottoms, tops) -> None:
        be = self.backend
        n, c, s = self.n, self.c, self.s
        if self.use_global:
            sf = float(self.blobs[2].host_data().reshape(-1)[0])
            f = 0.0 if sf == 0 else 1.0 / sf
            be.axpby(f, self.blobs[0].dev_data, 0.0, self.mean)
            be.axpby(f, self.blobs[1].dev_data, 0.0, self.var)
        else:
            be.channel_mean_var(bottoms[0].dev_data, self.mean, self.var, n, c, s)
            m = n * s
            bias_correction = m / (m - 1.0) if m > 1 else 1.0
            sf = self.blobs[2]
            sf.data = sf.host_data() * self.maf + 1.0
            be.axpby(1.0, self.mean, self.maf, self.blobs[0].dev_data)
            be.axpby(bias_correction, self.var, self.maf, self.blobs[1].dev_data)
        y = tops[0].dev_data
        be.batchnorm_fwd(bottoms[0].dev_data, self.mean, self.var, self.eps, y, self.inv_std, n, c, s)
        be.copy(y, self.x_norm)

    def backward(self, tops, propagate_down, bottoms) -> None:
        if propagate_down[0]:
            self.backend.batchnorm_bwd(self.x_norm, tops[0].dev_diff, self.inv_std, bottoms[0].dev_diff,
                                       self.n, self.c, self.s, self.use_global)
