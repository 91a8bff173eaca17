"""Prototxt text for small test nets."""
from __future__ import annotations


def net_text(inputs: dict[str, tuple[int, ...]], body: str) -> str:
    """A prototxt: one Input layer per entry of ``inputs``, then ``body``."""
    head = "".join(
        f'layer {{ name: "{n}" type: "Input" top: "{n}" input_param {{ shape {{ '
        + " ".join(f"dim: {d}" for d in s) + " } } }\n" for n, s in inputs.items())
    return 'name: "edge"\n' + head + body


def layer(name: str, type_: str, bottoms, tops, params: str = "") -> str:
    """One ``layer { ... }`` entry; ``bottoms`` / ``tops`` a name or a list of names."""
    b = "".join(f' bottom: "{x}"' for x in ([bottoms] if isinstance(bottoms, str) else bottoms))
    t = "".join(f' top: "{x}"' for x in ([tops] if isinstance(tops, str) else tops))
    return f'layer {{ name: "{name}" type: "{type_}"{b}{t} {params} }}\n'
