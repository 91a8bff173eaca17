"""RNN and LSTM (Caffe 1.0's RecurrentLayer, RNNLayer, LSTMLayer): Caffe's unrolled semantics.

Bottoms: x (T, N, ...) -- T time steps of N independent streams --, cont (T, N) -- the sequence
continuation indicators, 0 at the first step of a sequence --, an optional static input x_static
(N, ...) seen at every step, and, with ``expose_hidden``, the initial state h_0 (1, N, H) (LSTM:
then c_0). Tops: the outputs (T, N, H) and, with ``expose_hidden``, the final state h_T (LSTM:
then c_T), each (1, N, H).

As Caffe does, the layer builds a NetParameter of the unrolled net (``unrolled_net_param``: the
same layers, blob names and ``param { name }`` weight sharing as RNNLayer::FillUnrolledNet /
LSTMLayer::FillUnrolledNet, layer names prefixed by this layer's name) and runs it as a
runner.Net on the same backend. Per step t = 1..T, with h_conted = cont_t * h_{t-1}:

    RNN:   h_t = tanh(W_hh h_conted + W_xh x_t + b_h [+ W_xh_static x_static]),
           o_t = tanh(W_ho h_t + b_o)                                   (top: o)
    LSTM:  [i', f', o', g'] = W_hc h_conted + W_xc x_t + b_c [+ W_xc_static x_static], then the
           LSTMUnit step: c_t = cont_t * f * c_{t-1} + i * g, h_t = o * tanh(c_t)   (top: h)

Learnable blobs, Caffe's order and shapes (so a Caffe-trained .caffemodel, e.g. LRCN's, loads):
LSTM W_xc (4H, X), b_c (4H,), [W_xc_static (4H, S)], W_hc (4H, H); RNN W_xh (H, X), b_h (H,),
[W_xh_static (H, S)], W_hh (H, H), W_ho (H, H), b_o (H,); X = prod of x's axes after the first two,
S = prod of x_static's axes after the first. Weights take ``recurrent_param.weight_filler``, biases
``bias_filler`` (Caffe's default filler: constant 0).

State across forwards (Caffe's rules): without ``expose_hidden`` each forward starts from the
previous forward's final state (h_0 := h_T, c_0 := c_T; zeros before the first), which matters
only where cont_1 != 0. Gradients do not cross forwards: the exposed h_0 / c_0 bottoms get a zero
gradient and the exposed h_T / c_T tops' diffs are ignored (Caffe shares only their data). cont
never gets a gradient (refused, as Caffe CHECKs). ``debug_info`` is ignored.
"""
from __future__ import annotations

from google.protobuf import text_format

from netdef.shapes import recurrent_bottoms
from proto import caffe_pb2 as pb
from runner.blob import Blob
from runner.layers.base import Layer
from runner.registry import register


def _shape_text(shape) -> str:
    return "shape { " + " ".join(f"dim: {int(d)}" for d in shape) + " }"


def _filler_text(name: str, fp: pb.FillerParameter) -> str:
    return f"{name} {{ {text_format.MessageToString(fp, as_one_line=True)} }}"


def unrolled_net_param(lp: pb.LayerParameter, x_shape, cont_shape, static_shape=None) -> pb.NetParameter:
    """The NetParameter of the unrolled RNN / LSTM net for bottoms of these shapes, as Caffe's
    RecurrentLayer::LayerSetUp + FillUnrolledNet write it (names prefixed by ``lp.name``); the
    output-concatenating layer carries a loss weight of 1 in place of Caffe's pseudo-loss layers,
    so the same layers run backward."""
    p = lp.recurrent_param
    t_steps, n = int(x_shape[0]), int(x_shape[1])
    h = int(p.num_output)
    lstm = lp.type == "LSTM"
    gates = 4 * h if lstm else h
    wf = _filler_text("weight_filler", p.weight_filler)
    bf = _filler_text("bias_filler", p.bias_filler)

    def ip(num: int, axis: int, bias: bool, params: list[str]) -> str:
        spec = " ".join(f'param {{ name: "{q}" }}' for q in params)
        return (f'type: "InnerProduct" {spec} inner_product_param {{ num_output: {num} '
                f'bias_term: {"true" if bias else "false"} axis: {axis} {wf} {bf if bias else ""} }}')

    layers: list[str] = []

    def add(name: str, body: str, bottoms=(), tops=(), extra: str = "") -> None:
        b = " ".join(f'bottom: "{x}"' for x in bottoms)
        t = " ".join(f'top: "{x}"' for x in tops)
        layers.append(f'layer {{ name: "{name}" {body} {b} {t} {extra} }}')

    inputs = [("x", x_shape), ("cont", cont_shape)] + ([("x_static", static_shape)]
                                                       if static_shape is not None else [])
    add("input", 'type: "Input" input_param { ' + " ".join(_shape_text(s) for _, s in inputs) + " }",
        tops=[nm for nm, _ in inputs])
    state = (1, n, h)
    if lstm:
        add("", f'type: "Input" input_param {{ {_shape_text(state)} {_shape_text(state)} }}',
            tops=["c_0", "h_0"])
    else:
        add("", f'type: "Input" input_param {{ {_shape_text(state)} }}', tops=["h_0"])
    steps = range(1, t_steps + 1)
    add("cont_slice", 'type: "Slice" slice_param { axis: 0 }', ["cont"], [f"cont_{t}" for t in steps])
    xw, wname, bname = ("W_xc", "W_xc", "b_c") if lstm else ("W_xh", "W_xh", "b_h")
    add("x_transform", ip(gates, 2, True, [wname, bname]), ["x"], [f"{xw}_x"],
        "propagate_down: true")
    static = static_shape is not None
    if static:
        add(f"{xw}_x_static", ip(gates, 1, False, [f"{wname}_static"]), ["x_static"],
            [f"{xw}_x_static_preshape"], "propagate_down: true")
        add(f"{xw}_x_static_reshape", f'type: "Reshape" reshape_param {{ shape {{ dim: 1 dim: -1 '
            f"dim: {gates} }} }}", [f"{xw}_x_static_preshape"], [f"{xw}_x_static"])
    add(f"{xw}_x_slice", 'type: "Slice" slice_param { axis: 0 }', [f"{xw}_x"],
        [f"{xw}_x_{t}" for t in steps])
    outputs = []
    for t in steps:
        add(f"h_conted_{t - 1}", 'type: "Scale" scale_param { axis: 0 }', [f"h_{t - 1}", f"cont_{t}"],
            [f"h_conted_{t - 1}"])
        static_in = [f"{xw}_x_static"] if static else []
        if lstm:
            add(f"transform_{t}", ip(gates, 2, False, ["W_hc"]), [f"h_conted_{t - 1}"],
                [f"W_hc_h_{t - 1}"])
            add(f"gate_input_{t}", 'type: "Eltwise" eltwise_param { operation: SUM }',
                [f"W_hc_h_{t - 1}", f"W_xc_x_{t}", *static_in], [f"gate_input_{t}"])
            add(f"unit_{t}", 'type: "LSTMUnit"', [f"c_{t - 1}", f"gate_input_{t}", f"cont_{t}"],
                [f"c_{t}", f"h_{t}"])
            outputs.append(f"h_{t}")
        else:
            add(f"W_hh_h_{t - 1}", ip(gates, 2, False, ["W_hh"]), [f"h_conted_{t - 1}"],
                [f"W_hh_h_{t - 1}"])
            add(f"h_input_sum_{t}", 'type: "Eltwise" eltwise_param { operation: SUM }',
                [f"W_hh_h_{t - 1}", f"W_xh_x_{t}", *static_in], [f"h_neuron_input_{t}"])
            add(f"h_neuron_{t}", 'type: "TanH"', [f"h_neuron_input_{t}"], [f"h_{t}"])
            add(f"W_ho_h_{t}", ip(h, 2, True, ["W_ho", "b_o"]), [f"h_{t}"], [f"W_ho_h_{t}"])
            add(f"o_neuron_{t}", 'type: "TanH"', [f"W_ho_h_{t}"], [f"o_{t}"])
            outputs.append(f"o_{t}")
    if lstm:
        add("", 'type: "Split"', [f"c_{t_steps}"], ["c_T"])
    out = "h" if lstm else "o"
    add(f"{out}_concat", 'type: "Concat" concat_param { axis: 0 }', outputs, [out], "loss_weight: 1")
    net = pb.NetParameter()
    text_format.Parse("\n".join(layers), net)
    for i, layer in enumerate(net.layer):
        base = layer.name or f"layer{i}"
        layer.name = f"{lp.name}_{base}" if lp.name else base
    net.name = f"{lp.name}_unrolled"
    return net


class RecurrentLayer(Layer):
    """Caffe's RecurrentLayer: runs the unrolled net of a subclass (see the module docstring)."""

    lstm = False     # LSTM (h and c states, LSTMUnit steps) or RNN (h, tanh steps)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def _names(self, t_steps: int) -> tuple[list[str], list[str], str]:
        if self.lstm:
            return ["h_0", "c_0"], [f"h_{t_steps}", "c_T"], "h"
        return ["h_0"], [f"h_{t_steps}"], "o"

    def setup(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        from runner.net import Net
        shapes = self.infer(bottoms)            # Caffe's checks (netdef.shapes)
        self.static, self.exposed = recurrent_bottoms(self.param, len(bottoms))
        self.t_steps = bottoms[0].shape[0]
        net_param = unrolled_net_param(self.param, bottoms[0].shape, bottoms[1].shape,
                                       bottoms[2].shape if self.static else None)
        self.net = Net(net_param, phase=self.phase, device=self.backend,
                       seed=int(self.rng.integers(0, 2**62)), dtype=self.backend.dtype)
        rin, rout, out = self._names(self.t_steps)
        blobs = self.net.blobs
        self.x_blob, self.cont_blob = blobs["x"], blobs["cont"]
        self.static_blob = blobs["x_static"] if self.static else None
        self.recur_in = [blobs[n] for n in rin]
        self.recur_out = [blobs[n] for n in rout]
        self.out_blob = blobs[out]
        # this layer's parameters: the unrolled net's owned (first-appearance) blobs, Caffe's order
        self.blobs = [p.blob for p in self.net.learnable_params]
        self.param_propagate_down = [True] * len(self.blobs)
        if [b.shape for b in self.blobs] != [tuple(s) for s in shapes.param_shapes]:
            raise self.error(f"unrolled net parameters {[b.shape for b in self.blobs]} differ from "
                             f"the shape rules' {shapes.param_shapes}")
        # (sharer, owner) pairs of the unrolled net: re-pointed before each pass, since an outer
        # share (param { name } across layers, Net.share_weights) replaces the owners' buffers
        self._shared = []
        for node in self.net.graph.layers:
            for j, info in enumerate(node.param_specs):
                if info.owner is not None:
                    oname, oj = info.owner
                    self._shared.append((self.net.layer_dict[node.name].blobs[j],
                                         self.net.layer_dict[oname].blobs[oj]))
        self._layers = list(zip(self.net.layers, self.net.bottom_vecs, self.net.top_vecs,
                                self.net.need_backward_flags, self.net.bottom_need_backward))

    def reshape(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        shapes = self.infer(bottoms)
        if bottoms[0].shape[0] != self.t_steps:
            raise self.error(f"input number of timesteps changed: {self.t_steps} at setup, "
                             f"{bottoms[0].shape[0]} now")
        n = bottoms[0].shape[1]
        # inputs: Caffe's ShareData (x, x_static: and ShareDiff; cont, exposed h_0/c_0: data only)
        self.x_blob.reshape(bottoms[0].shape)
        self.x_blob.share_data(bottoms[0])
        self.x_blob.share_diff(bottoms[0])
        self.cont_blob.reshape(bottoms[1].shape)
        self.cont_blob.share_data(bottoms[1])
        if self.static:
            self.static_blob.reshape(bottoms[2].shape)
            self.static_blob.share_data(bottoms[2])
            self.static_blob.share_diff(bottoms[2])
        for j, blob in enumerate(self.recur_in):
            blob.reshape((1, n, self.param.recurrent_param.num_output))
            if self.exposed:
                blob.share_data(bottoms[2 + self.static + j])
        self.net.reshape()
        out = tops[0]
        out.reshape(shapes.top_shapes[0])
        out.share_data(self.out_blob)
        out.share_diff(self.out_blob)
        for j, top in enumerate(tops[1:]):
            top.reshape(shapes.top_shapes[1 + j])
            top.share_data(self.recur_out[j])

    def _reshare(self) -> None:
        for sharer, owner in self._shared:
            if sharer._data is not owner._data:
                sharer.share_data(owner)
            if sharer._diff is not owner._diff:
                sharer.share_diff(owner)

    def forward(self, bottoms: list[Blob], tops: list[Blob]) -> None:
        self._reshare()
        if not self.exposed:        # continue from the last forward's final state
            for src, dst in zip(self.recur_out, self.recur_in):
                self.backend.copy(src.dev_data, dst.dev_data)
        for layer, b, t, _, _ in self._layers:
            layer.forward(b, t)

    def backward(self, tops: list[Blob], propagate_down: list[bool], bottoms: list[Blob]) -> None:
        if propagate_down[1]:
            raise self.error("cannot backpropagate to sequence indicators (bottom 1, cont)")
        self._reshare()
        for layer, b, t, need, pd in reversed(self._layers):
            if need:
                layer.backward(t, pd, b)
        for i in range(2 + self.static, len(bottoms)):
            if propagate_down[i]:       # no gradient crosses forwards (Caffe shares only data)
                self.backend.fill(bottoms[i].dev_diff, 0.0)


@register("RNN")
class RNNLayer(RecurrentLayer):
    lstm = False


@register("LSTM")
class LSTMLayer(RecurrentLayer):
    lstm = True
