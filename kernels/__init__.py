"""Hand-written Numba CUDA kernels, one module per family (see DESIGN.md and docs/kernels.md).

Each module exports public ``<op>_fwd``/``<op>_bwd`` (or named) functions taking device arrays
(numba or any ``__cuda_array_interface__`` object) with preallocated outputs, a ``KERNELS`` dict
of every ``@cuda.jit`` kernel with its launch signatures, and, where an op has several versions, a
``PROMOTED`` table naming the one its public function launches (GEMM: the planner, ``gemm.plan``).
Helpers shared by several families live in the private modules ``_launch`` (launch geometry,
``launch_1d``, scratch buffers, device geometry tables, ``promoted``), ``_index`` (checked flat
views, magic division), ``_block`` (block sums, channel walks), ``_vec`` (128-bit loads/stores) and
``_elementwise`` (elementwise templates); no family keeps a private copy of them.
Submodules are imported explicitly (``from kernels import gemm``) so importing this package does
not import numba.
"""

import numpy as _np

# numba 0.68.0 (seen on a GPU image with numpy 2.5) still names ``np.row_stack``, which numpy 2.5
# removed; it fails every compile with AttributeError. It was an alias of vstack: restore it.
if not hasattr(_np, "row_stack"):
    _np.row_stack = _np.vstack
