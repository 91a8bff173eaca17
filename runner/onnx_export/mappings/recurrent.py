"""Recurrent layers: RNN and LSTM (Caffe's RecurrentLayer), LSTMUnit.

RNN / LSTM are exported as what Caffe runs: the unrolled net of ``T`` time steps that nbcaffe's
layer builds (``runner.layers.recurrent.unrolled_net_param``, Caffe's FillUnrolledNet), emitted
through this same mapping table (its InnerProduct, Slice, Scale, Eltwise, TanH / LSTMUnit and
Concat layers), its tensors named ``<layer>/<blob>``, its weights this layer's blobs (the
unrolled net's first-appearance blobs, in order; the time steps share them by ``param`` name).
The unrolled net has a fixed number of steps and streams, so the layer's bottoms need a static
shape (export with ``--batch T``, the first axis).

State: with ``expose_hidden`` the initial state h_0 (LSTM: and c_0) is a bottom and the final one
a top, as in Caffe. Without it Caffe carries the final state of one forward into the next; the
model holds no state, so it takes the state as extra inputs ``<layer>/h_0`` (``/c_0``), zeros for
a fresh net, and returns ``<layer>/h_T`` (``/c_T``) to feed back, and a note says so.

LSTMUnit: i = sigmoid(i'), f = cont * sigmoid(f'), o = sigmoid(o'), g = tanh(g') from the gate
input [i', f', o', g'] (axis 2); c = f * c_prev + i * g, h = o * tanh(c), with Caffe's
tanh(x) = 2 sigmoid(2x) - 1.
"""
from __future__ import annotations

from netdef.graph import build_graph
from netdef.shapes import recurrent_bottoms
from runner.onnx_export.builder import LayerContext
from runner.onnx_export.plan import Dims, make_plan
from runner.onnx_export.table import maps
from runner.onnx_export.walk import emit


@maps("RNN", "LSTM")
def recurrent(ctx: LayerContext) -> None:
    from runner.layers.recurrent import unrolled_net_param

    lp = ctx.param
    lstm = ctx.type == "LSTM"
    static, exposed = recurrent_bottoms(lp, len(ctx.inputs))
    shapes = ctx.node.bottom_shapes
    for j in range(len(ctx.inputs)):
        d = ctx.bottom_dims(j)
        if d.dyn is not None:
            raise ctx.refuse(f"it runs as a net unrolled over the {shapes[0][0]} time steps of "
                             f"its bottom's first axis, which scales with the batch here; export "
                             f"with a fixed first axis (--batch {shapes[0][0]})")
    t_steps, n = shapes[0][0], shapes[0][1]
    hdim = int(lp.recurrent_param.num_output)
    inner = unrolled_net_param(lp, shapes[0], shapes[1], shapes[2] if static else None)
    plan = make_plan(inner, build_graph(inner, phase=ctx.plan.graph.phase), batch=t_steps)

    arrays: dict[str, list] = {}
    k = 0
    for node in plan.graph.layers:
        arrays[node.name] = []
        for info in node.param_specs:
            if info.owner is None:
                arrays[node.name].append(ctx.blob(k))
                k += 1
            else:
                arrays[node.name].append(arrays[info.owner[0]][info.owner[1]])
    if k != len(ctx.node.param_shapes):
        raise ctx.refuse(f"the unrolled net has {k} parameter blobs, the layer {len(ctx.node.param_shapes)}")

    state_in = ["h_0", "c_0"] if lstm else ["h_0"]
    state_out = [f"h_{t_steps}", "c_T"] if lstm else [f"h_{t_steps}"]
    bind = {"x": ctx.inputs[0], "cont": ctx.inputs[1]}
    if static:
        bind["x_static"] = ctx.inputs[2]
    state = Dims((1, n, hdim))
    if exposed:
        bind.update(zip(state_in, ctx.inputs[2 + static:]))
    else:
        for s in state_in:
            bind[s] = ctx.b.fresh(f"{ctx.name}/{s}")
            ctx.b.extra_inputs[bind[s]] = state
    walk = emit(plan, ctx.b, bind, arrays.get, None, prefix=ctx.name)
    ctx.b.declared.update(walk.produced)
    ctx.op("Identity", [walk.cur["h" if lstm else "o"]], ctx.outputs[0])
    if exposed:
        for s, top in zip(state_out, ctx.outputs[1:]):
            ctx.op("Identity", [walk.cur[s]], top)
        return
    finals = []
    for s in state_out:
        name = ctx.op("Identity", [walk.cur[s]], ctx.b.fresh(f"{ctx.name}/{s[0]}_T"))
        ctx.b.extra_outputs[name] = state
        finals.append(name)
    ctx.notes.append(f"layer '{ctx.name}' ({ctx.type}) carries its state from one forward to the "
                     f"next: the model takes it as inputs {', '.join(bind[s] for s in state_in)} "
                     f"(zeros for a fresh net) and returns the final state as {', '.join(finals)}")


@maps("LSTMUnit")
def lstm_unit(ctx: LayerContext) -> None:
    c_prev, x, cont = ctx.inputs
    d = ctx.bottom_dims(0).ref[2]
    gates = ctx.op_n("Split", [x, ctx.ints([d] * 4, "split")],
                     [ctx.tmp(g) for g in ("i_in", "f_in", "o_in", "g_in")], axis=2)
    two = ctx.const(2.0, "two")

    def tanh(v: str) -> str:                     # Caffe's tanh: 2 sigmoid(2x) - 1
        s = ctx.op("Sigmoid", [ctx.op("Mul", [v, two])])
        return ctx.op("Sub", [ctx.op("Mul", [s, two]), ctx.const(1.0, "one")])

    i = ctx.op("Sigmoid", [gates[0]])
    k = ctx.op("Unsqueeze", [cont, ctx.ints([2], "axis")])
    f = ctx.op("Mul", [k, ctx.op("Sigmoid", [gates[1]])])
    o = ctx.op("Sigmoid", [gates[2]])
    g = tanh(gates[3])
    c = ctx.op("Add", [ctx.op("Mul", [f, c_prev]), ctx.op("Mul", [i, g])], ctx.outputs[0])
    ctx.op("Mul", [o, tanh(c)], ctx.outputs[1])
