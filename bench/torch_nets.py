"""The benchmark nets in PyTorch eager, with Caffe's semantics: the baseline of ``bench_train.py``.

``CaffeTorchNet(net_param, phase="TRAIN")`` builds a ``torch.nn.Module`` from a Caffe NetParameter
(the same synthetic prototxt our runner reads, see ``bench/netprep.py``), layer by layer:

| Caffe type | torch |
|---|---|
| Input | the forward's ``data`` and ``label`` arguments |
| Convolution | ``F.conv2d`` with Caffe's weight layout (Cout, Cin/group, kh, kw), ``groups=group`` |
| InnerProduct | ``F.linear`` on the input flattened from axis 1 (weight (out, in), Caffe's layout) |
| Pooling MAX | ``F.max_pool2d(ceil_mode=True)`` (Caffe rounds up; drops a window starting in the pad) |
| ReLU | ``F.relu`` (negative_slope: ``F.leaky_relu``) |
| LRN ACROSS_CHANNELS | ``F.local_response_norm``: x / (k + alpha/n * sum over n channels of x^2)^beta |
| Dropout | ``F.dropout`` (inverted: kept values scaled by 1/(1-ratio), as Caffe) |
| SoftmaxWithLoss | ``F.cross_entropy`` (batch mean: Caffe's VALID normalisation, no ignore_label) |
| Accuracy | dropped in TRAIN (its include rule) |

Parameters carry Caffe's ``lr_mult``/``decay_mult`` (``param { }`` blocks); ``caffe_sgd`` builds a
``torch.optim.SGD`` with one group per (lr_mult, decay_mult). For a fixed learning rate its update
(v = m v + (g + wd w); w -= lr v) equals Caffe's SGD (v = m v + lr (g + wd w); w -= v) with v scaled
by lr. ``load_from(params)`` copies weights by layer name (e.g. from our runner's net) for validation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _phase_ok(layer, phase: str) -> bool:
    """Caffe's NetState rule for the simple case used by the benchmark nets (phase only)."""
    from proto import caffe_pb2
    want = caffe_pb2.TRAIN if phase == "TRAIN" else caffe_pb2.TEST
    if layer.include:
        return any((not r.HasField("phase")) or r.phase == want for r in layer.include)
    if layer.exclude:
        return not any(r.HasField("phase") and r.phase == want for r in layer.exclude)
    return True


def _pair(values, h_field: int, w_field: int, default: int) -> tuple[int, int]:
    """Caffe's kernel/stride/pad rule: explicit _h/_w, else the (repeated or scalar) value, else the
    default."""
    if h_field or w_field:
        return int(h_field), int(w_field)
    if isinstance(values, int):
        return int(values), int(values)
    vals = list(values)
    if not vals:
        return default, default
    return (int(vals[0]), int(vals[-1])) if len(vals) > 1 else (int(vals[0]), int(vals[0]))


def _fill(t: torch.Tensor, filler, fan_in: int, fan_out: int, gen: torch.Generator) -> None:
    """Caffe's fillers used by the benchmark nets: constant, gaussian, xavier (uniform +-sqrt(3/fan_in)),
    msra (gaussian std sqrt(2/fan_in)); other types fall back to gaussian std 0.01."""
    kind = filler.type if filler is not None else "constant"
    with torch.no_grad():
        if kind == "constant":
            t.fill_(filler.value if filler is not None else 0.0)
        elif kind == "gaussian":
            t.copy_(torch.randn(t.shape, generator=gen) * filler.std + filler.mean)
        elif kind == "xavier":
            a = math.sqrt(3.0 / fan_in)
            t.copy_((torch.rand(t.shape, generator=gen) * 2 - 1) * a)
        elif kind == "msra":
            t.copy_(torch.randn(t.shape, generator=gen) * math.sqrt(2.0 / fan_in))
        else:
            t.copy_(torch.randn(t.shape, generator=gen) * 0.01)


class CaffeTorchNet(nn.Module):
    """A Caffe NetParameter (Input, Convolution, InnerProduct, Pooling, ReLU, LRN, Dropout,
    SoftmaxWithLoss, Accuracy) as a torch module. ``forward(data, label)`` returns the loss (a scalar
    tensor). Input shapes come from the Input layer's ``input_param``."""

    def __init__(self, net_param, phase: str = "TRAIN", seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.phase = phase
        self.ops: list[tuple[str, str, list[str], list[str], dict]] = []
        self.params_by_layer = nn.ModuleDict()
        self.mults: dict[str, tuple[float, float]] = {}   # param name -> (lr_mult, decay_mult)
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in net_param.layer:
            if not _phase_ok(layer, phase):
                continue
            t = layer.type
            bots, tops = list(layer.bottom), list(layer.top)
            if t == "Input":
                for top, shp in zip(tops, layer.input_param.shape):
                    shapes[top] = tuple(int(d) for d in shp.dim)
                self.input_names = tops
                continue
            if t == "Accuracy":
                continue
            cfg: dict = {}
            if t == "Convolution":
                p = layer.convolution_param
                n, c, h, w = shapes[bots[0]]
                kh, kw = _pair(p.kernel_size, p.kernel_h, p.kernel_w, 1)
                sh, sw = _pair(p.stride, p.stride_h, p.stride_w, 1)
                ph, pw = _pair(p.pad, p.pad_h, p.pad_w, 0)
                g = int(p.group)
                cout = int(p.num_output)
                cfg = dict(stride=(sh, sw), padding=(ph, pw), groups=g, bias=p.bias_term)
                oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
                shapes[tops[0]] = (n, cout, oh, ow)
                mod = nn.Module()
                mod.weight = nn.Parameter(torch.empty(cout, c // g, kh, kw))
                _fill(mod.weight, p.weight_filler, c // g * kh * kw, cout // g * kh * kw, gen)
                if p.bias_term:
                    mod.bias = nn.Parameter(torch.empty(cout))
                    _fill(mod.bias, p.bias_filler, 1, 1, gen)
                self._register(layer, mod)
            elif t == "InnerProduct":
                p = layer.inner_product_param
                shp = shapes[bots[0]]
                fan_in = int(math.prod(shp[1:]))
                cout = int(p.num_output)
                shapes[tops[0]] = (shp[0], cout)
                mod = nn.Module()
                mod.weight = nn.Parameter(torch.empty(cout, fan_in))
                _fill(mod.weight, p.weight_filler, fan_in, cout, gen)
                if p.bias_term:
                    mod.bias = nn.Parameter(torch.empty(cout))
                    _fill(mod.bias, p.bias_filler, 1, 1, gen)
                cfg = dict(bias=p.bias_term)
                self._register(layer, mod)
            elif t == "Pooling":
                p = layer.pooling_param
                n, c, h, w = shapes[bots[0]]
                if p.global_pooling:
                    kh, kw, sh, sw, ph, pw = h, w, 1, 1, 0, 0
                else:
                    kh, kw = _pair(p.kernel_size, p.kernel_h, p.kernel_w, 1)
                    sh, sw = _pair(p.stride, p.stride_h, p.stride_w, 1)
                    ph, pw = _pair(p.pad, p.pad_h, p.pad_w, 0)
                if p.pool != 0:   # only MAX: AVE's border divisor differs between Caffe and torch
                    raise NotImplementedError(f"layer {layer.name}: only MAX pooling in the torch baseline")
                oh = int(math.ceil((h + 2 * ph - kh) / sh)) + 1
                ow = int(math.ceil((w + 2 * pw - kw) / sw)) + 1
                if ph and (oh - 1) * sh >= h + ph:
                    oh -= 1
                if pw and (ow - 1) * sw >= w + pw:
                    ow -= 1
                shapes[tops[0]] = (n, c, oh, ow)
                cfg = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw))
            elif t in ("ReLU", "Dropout"):
                shapes[tops[0]] = shapes[bots[0]]
                cfg = (dict(slope=layer.relu_param.negative_slope) if t == "ReLU"
                       else dict(p=layer.dropout_param.dropout_ratio))
            elif t == "LRN":
                p = layer.lrn_param
                if p.norm_region != 0:
                    raise NotImplementedError(f"layer {layer.name}: only ACROSS_CHANNELS LRN")
                shapes[tops[0]] = shapes[bots[0]]
                cfg = dict(size=int(p.local_size), alpha=p.alpha, beta=p.beta, k=p.k)
            elif t == "SoftmaxWithLoss":
                shapes[tops[0]] = ()
            else:
                raise NotImplementedError(f"layer {layer.name}: type {t} not in the torch baseline")
            self.ops.append((layer.name, t, bots, tops, cfg))
        self.shapes = shapes

    def _register(self, layer, mod: nn.Module) -> None:
        self.params_by_layer[layer.name] = mod
        specs = list(layer.param)
        for i, pname in enumerate(("weight", "bias")):
            if not hasattr(mod, pname):
                continue
            lr, dm = (specs[i].lr_mult, specs[i].decay_mult) if i < len(specs) else (1.0, 1.0)
            self.mults[f"params_by_layer.{layer.name}.{pname}"] = (float(lr), float(dm))

    def forward(self, data: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        blobs: dict[str, torch.Tensor] = {self.input_names[0]: data, self.input_names[1]: label}
        loss = None
        for name, t, bots, tops, cfg in self.ops:
            x = blobs[bots[0]]
            if t == "Convolution":
                m = self.params_by_layer[name]
                y = F.conv2d(x, m.weight, m.bias if cfg["bias"] else None, stride=cfg["stride"],
                             padding=cfg["padding"], groups=cfg["groups"])
            elif t == "InnerProduct":
                m = self.params_by_layer[name]
                y = F.linear(x.flatten(1), m.weight, m.bias if cfg["bias"] else None)
            elif t == "Pooling":
                y = F.max_pool2d(x, cfg["kernel_size"], cfg["stride"], cfg["padding"], ceil_mode=True)
            elif t == "ReLU":
                y = F.relu(x) if cfg["slope"] == 0 else F.leaky_relu(x, cfg["slope"])
            elif t == "Dropout":
                y = F.dropout(x, cfg["p"], training=self.phase == "TRAIN")
            elif t == "LRN":
                y = F.local_response_norm(x, cfg["size"], cfg["alpha"], cfg["beta"], cfg["k"])
            elif t == "SoftmaxWithLoss":
                y = F.cross_entropy(x, blobs[bots[1]].long())
                loss = y
            blobs[tops[0]] = y
        self.blobs = blobs
        return loss

    def load_from(self, params: dict[str, list]) -> None:
        """Copy parameters by layer name from ``{layer: [weight array, bias array]}`` (host arrays in
        Caffe's layout, e.g. our runner's ``net.params[name][i].data``)."""
        with torch.no_grad():
            for name, mod in self.params_by_layer.items():
                arrays = params[name]
                for i, pname in enumerate(("weight", "bias")):
                    if hasattr(mod, pname):
                        p = getattr(mod, pname)
                        p.copy_(torch.as_tensor(arrays[i]).reshape(p.shape).to(p.device))


def caffe_sgd(model: CaffeTorchNet, base_lr: float, momentum: float, weight_decay: float):
    """``torch.optim.SGD`` (foreach) with one parameter group per (lr_mult, decay_mult): lr =
    base_lr * lr_mult, weight_decay = weight_decay * decay_mult."""
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        groups.setdefault(model.mults.get(name, (1.0, 1.0)), []).append(p)
    return torch.optim.SGD(
        [{"params": ps, "lr": base_lr * lr, "weight_decay": weight_decay * dm}
         for (lr, dm), ps in groups.items()],
        lr=base_lr, momentum=momentum, foreach=True)


def train_step(model: CaffeTorchNet, opt, data: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """One Caffe iteration: clear diffs, forward, backward, SGD update; returns the loss tensor."""
    opt.zero_grad(set_to_none=True)
    loss = model(data, label)
    loss.backward()
    opt.step()
    return loss
