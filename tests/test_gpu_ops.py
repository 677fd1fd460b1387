"""Every GPU op against edgeplex's CPU kernels and LiteRT, over shapes and options.

Each case is a one-op model placed entirely on the GPU (asserted from the
placement report), run on random inputs, and compared with the CPU kernels
(edgeplex without delegates) and with LiteRT's builtin kernels.

Tolerances, fp32 (all <= 1e-4 relative):

- ``exact``: data movement, comparisons, clamps and the single correctly
  rounded IEEE operations (+, -, *, |x|, -x): the GPU computes the same
  float32 operation, so results are bit-identical.
- ``ulp`` (rtol 1e-5, atol 1e-6): one transcendental function (exp, log,
  tanh, erfc ...) or a division per element: GLSL's exp/log/sqrt/division
  are within a few ulp (GLSL 4.30 §4.7.1); the reference's own functions
  differ by a few ulp too; atol covers results that are tiny next to their
  inputs (tanh/GELU tails).
- ``sum`` (rtol 1e-4, atol 1e-5 x the output's largest magnitude):
  reductions (convolutions, matrix products, pooling averages, MEAN,
  SOFTMAX, bilinear weights) sum in another order than the reference;
  the rounding error of a float32 sum of K terms is bounded by K * 2^-24 *
  sum(|terms|), which the atol bounds relative to the output's scale (a
  sum that cancels to near zero has no meaningful relative error).

fp16 storage (``precision="fp16"``): cases run with inputs and constants
rounded to float16 first, so storing them as float16 loses nothing and the
only new error is the rounding of the output to float16 — at most half an
fp16 ulp, 2^-11 relative (2^-25 absolute below float16's normal range). The
fp16 tolerance is the fp32 one plus rtol 2^-10 (one full ulp: the GL
implementation's packHalf2x16 rounding mode is not specified) and atol 2^-24.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oracle import Const, const, inp, one_op_model, random_array, run_edgeplex, run_litert
from test_gpu import assert_all_on_gpu, gpu_interpreter, run

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.ir import DimensionMetadata, Sparsity
from edgeplex.delegates.gpu_gl import ops_math

TOLERANCES = {"exact": (0.0, 0.0), "ulp": (1e-5, 1e-6), "sum": (1e-4, 1e-5)}
FP16_RTOL, FP16_ATOL = 2.0 ** -10, 2.0 ** -24


@dataclass
class Case:
    """One op configuration."""

    op: str
    inputs: list
    options: dict = field(default_factory=dict)
    tol: str = "exact"
    low: float = -3.0
    high: float = 3.0
    name: str = ""
    out_dtype: Any = None

    @property
    def id(self) -> str:
        return f"{self.op}-{self.name}" if self.name else self.op


def rng_const(shape: Sequence[int], seed: int, low: float = -1.0, high: float = 1.0) -> Const:
    """A random float32 constant."""
    return const(np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32))


def ints(values: Sequence[int]) -> Const:
    """An int32 constant."""
    return const(np.asarray(values, np.int32))


ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def binary_cases() -> list[Case]:
    out = []
    # the first three run one element per invocation, the last three four (vec4)
    shapes = [((2, 3, 4, 5), (2, 3, 4, 5), "same"), ((1, 4, 4, 3), (3,), "channel"),
              ((2, 1, 3), (1, 4, 1), "both"), ((3, 8), None, "scalar-vec4"),
              ((2, 3, 8), (3, 1), "last-broadcast-vec4"), ((1, 2, 3, 8), (2, 1, 8), "vec4")]
    for op, tol in [("ADD", "exact"), ("SUB", "exact"), ("MUL", "exact"), ("DIV", "ulp"),
                    ("MAXIMUM", "exact"), ("MINIMUM", "exact"),
                    ("SQUARED_DIFFERENCE", "exact")]:
        for a, b, name in shapes:
            second = const(np.float32(1.75)) if b is None else inp(b)
            out.append(Case(op, [inp(a), second], {}, tol, name=name))
        if op in ("ADD", "SUB", "MUL", "DIV"):
            for act in ACTS[1:]:
                out.append(Case(op, [inp((2, 3, 4)), rng_const((3, 4), 1)],
                                {"fused_activation_function": act}, tol, name=act))
    return out


UNARY = [("ABS", "exact", -3, 3), ("EXP", "ulp", -5, 5), ("LOG", "ulp", 0.01, 9),
         ("SQRT", "ulp", 0, 9), ("RSQRT", "ulp", 0.01, 9), ("SQUARE", "exact", -3, 3),
         ("NEG", "exact", -3, 3), ("RELU", "exact", -3, 3), ("RELU6", "exact", -9, 9),
         ("RELU_N1_TO_1", "exact", -3, 3), ("LOGISTIC", "ulp", -9, 9), ("TANH", "ulp", -5, 5),
         ("HARD_SWISH", "ulp", -5, 5), ("ELU", "ulp", -5, 5)]


def unary_cases() -> list[Case]:
    out = [Case(op, [inp((2, 3, 4, 7))], {}, tol, lo, hi) for op, tol, lo, hi in UNARY]
    out += [Case(op, [inp((3, 7))], {}, tol, lo, hi, name="odd") for op, tol, lo, hi in UNARY]
    out += [Case(op, [inp((4, 50))], {}, "ulp", -0.2, 0.2, name="near0")
            for op in ("TANH", "ELU", "LOGISTIC", "EXP")]
    out += [Case("LEAKY_RELU", [inp((2, 6, 7))], {"alpha": 0.2}, "ulp"),
            Case("GELU", [inp((3, 40))], {"approximate": False}, "ulp", -6, 6, "exact"),
            Case("GELU", [inp((3, 40))], {"approximate": True}, "ulp", -6, 6, "approximate"),
            Case("GELU", [inp((4, 50))], {"approximate": False}, "ulp", -0.2, 0.2, "near0")]
    out += [Case("PRELU", [inp((1, 4, 4, 3)), rng_const((1, 1, 3), 2)], {}, "ulp", name="chan"),
            Case("PRELU", [inp((2, 5, 3)), inp((5, 1))], {}, "ulp", name="input-alpha"),
            Case("SOFTMAX", [inp((2, 5))], {"beta": 1.0}, "sum"),
            Case("SOFTMAX", [inp((1, 3, 4, 10))], {"beta": 0.5}, "sum", -9, 9, "beta")]
    return out


def conv_opts(padding: str, stride: int, act: str = "NONE", dilation: int = 1) -> dict:
    return {"padding": padding, "stride_w": stride, "stride_h": stride,
            "dilation_w_factor": dilation, "dilation_h_factor": dilation,
            "fused_activation_function": act}


def conv_cases() -> list[Case]:
    return [
        Case("CONV_2D", [inp((1, 7, 7, 4)), rng_const((8, 3, 3, 4), 3), rng_const((8,), 4)],
             conv_opts("SAME", 1, "RELU"), "sum", name="vec4-same-relu"),
        Case("CONV_2D", [inp((1, 8, 8, 3)), rng_const((5, 3, 3, 3), 5), rng_const((5,), 23)],
             conv_opts("VALID", 2), "sum", name="scalar-valid-s2"),
        Case("CONV_2D", [inp((2, 9, 9, 2)), rng_const((4, 3, 3, 2), 6), rng_const((4,), 7)],
             conv_opts("SAME", 2, "RELU6", 2), "sum", name="vec4-dilated-s2-batch2"),
        Case("CONV_2D", [inp((1, 5, 5, 8)), rng_const((6, 1, 1, 8), 8), rng_const((6,), 9)],
             conv_opts("VALID", 1, "RELU_N1_TO_1"), "sum", name="1x1"),
        Case("CONV_2D", [inp((1, 5, 6, 4)), inp((4, 3, 2, 4)), rng_const((4,), 24)],
             conv_opts("SAME", 1), "sum", name="runtime-filter"),
        Case("DEPTHWISE_CONV_2D", [inp((1, 7, 7, 8)), rng_const((1, 3, 3, 8), 10),
                                   rng_const((8,), 11)],
             {**conv_opts("SAME", 1, "RELU6"), "depth_multiplier": 1}, "sum", name="vec4"),
        Case("DEPTHWISE_CONV_2D", [inp((1, 8, 8, 3)), rng_const((1, 3, 3, 6), 12),
                                   rng_const((6,), 25)],
             {**conv_opts("VALID", 2), "depth_multiplier": 2}, "sum", name="mult2-s2"),
        Case("DEPTHWISE_CONV_2D", [inp((2, 9, 9, 5)), rng_const((1, 5, 5, 5), 13),
                                   rng_const((5,), 14)],
             {**conv_opts("SAME", 1, "RELU", 2), "depth_multiplier": 1}, "sum", name="dilated"),
        Case("TRANSPOSE_CONV", [ints([1, 8, 8, 4]), rng_const((4, 3, 3, 3), 15),
                                inp((1, 4, 4, 3))],
             {"padding": "SAME", "stride_w": 2, "stride_h": 2}, "sum", name="same-s2",
             out_dtype=np.float32),
        Case("TRANSPOSE_CONV", [ints([1, 9, 9, 2]), rng_const((2, 3, 3, 4), 16),
                                inp((1, 4, 4, 4)), rng_const((2,), 17)],
             {"padding": "VALID", "stride_w": 2, "stride_h": 2}, "sum", name="valid-bias",
             out_dtype=np.float32),
        Case("FULLY_CONNECTED", [inp((2, 8)), rng_const((5, 8), 18), rng_const((5,), 19)],
             {"fused_activation_function": "RELU"}, "sum", name="relu"),
        Case("FULLY_CONNECTED", [inp((3, 2, 6)), rng_const((4, 12), 20)], {}, "sum",
             name="flatten"),
        Case("FULLY_CONNECTED", [inp((2, 3, 7)), rng_const((5, 7), 21)],
             {"keep_num_dims": True}, "sum", name="keep-dims"),
        Case("BATCH_MATMUL", [inp((2, 3, 4)), inp((2, 4, 5))], {}, "sum"),
        Case("BATCH_MATMUL", [inp((2, 4, 3)), inp((4, 5))], {"adj_x": True}, "sum",
             name="adj-x-broadcast"),
        Case("BATCH_MATMUL", [inp((1, 2, 3, 4)), inp((3, 1, 2, 4))], {"adj_y": True}, "sum",
             name="adj-y-batch-broadcast"),
    ]


def pool_opts(padding: str, size: int, stride: int, act: str = "NONE") -> dict:
    return {"padding": padding, "stride_w": stride, "stride_h": stride,
            "filter_width": size, "filter_height": size, "fused_activation_function": act}


def window_cases() -> list[Case]:
    out = []
    for op, tol in [("AVERAGE_POOL_2D", "sum"), ("MAX_POOL_2D", "exact")]:
        out += [Case(op, [inp((1, 7, 7, 4))], pool_opts("SAME", 3, 2), tol, name="vec4-same"),
                Case(op, [inp((2, 6, 6, 3))], pool_opts("VALID", 2, 2, "RELU"), tol,
                     name="valid-relu"),
                Case(op, [inp((1, 5, 5, 3))], pool_opts("SAME", 3, 1, "RELU6"), tol,
                     name="same-s1")]
    out += [Case("MEAN", [inp((2, 4, 4, 3)), ints([1, 2])], {"keep_dims": True}, "sum",
                 name="hw-keep"),
            Case("MEAN", [inp((2, 4, 5)), ints([-1])], {"keep_dims": False}, "sum",
                 name="last"),
            Case("MEAN", [inp((2, 3, 4, 5)), ints([0, 3])], {"keep_dims": False}, "sum",
                 name="outer-inner")]
    for op, tol in [("RESIZE_BILINEAR", "sum"), ("RESIZE_NEAREST_NEIGHBOR", "exact")]:
        out += [Case(op, [inp((1, 4, 5, 3)), ints([8, 10])], {}, tol, name="2x"),
                Case(op, [inp((2, 4, 5, 2)), ints([7, 9])], {"align_corners": True}, tol,
                     name="align"),
                Case(op, [inp((1, 4, 5, 3)), ints([6, 3])], {"half_pixel_centers": True}, tol,
                     name="half-pixel")]
    return out


def movement_cases() -> list[Case]:
    return [
        Case("CONCATENATION", [inp((1, 4, 4, 3)), inp((1, 4, 4, 5))], {"axis": 3}, name="chan"),
        Case("CONCATENATION", [inp((2, 3, 4)), rng_const((2, 1, 4), 22), inp((2, 2, 4))],
             {"axis": 1}, name="three-with-const"),
        Case("CONCATENATION", [inp((3, 2)), inp((3, 5))], {"axis": -1}, name="neg-axis"),
        Case("RESHAPE", [inp((2, 3, 4)), ints([6, 4])], {}),
        Case("RESHAPE", [inp((1, 4, 4, 2))], {"new_shape": [1, 32]}, name="options"),
        Case("SQUEEZE", [inp((1, 3, 1, 4))], {"squeeze_dims": [0, 2]}),
        Case("TRANSPOSE", [inp((2, 3, 4, 5)), ints([0, 3, 1, 2])], {}, name="nhwc-nchw"),
        Case("TRANSPOSE", [inp((3, 4)), ints([1, 0])], {}, name="2d"),
        Case("PAD", [inp((1, 4, 4, 3)), ints([[0, 0], [1, 2], [2, 1], [0, 0]])], {},
             name="spatial"),
        Case("PAD", [inp((1, 3, 3, 3)), ints([[0, 0], [0, 0], [0, 0], [0, 5]])], {},
             name="channels"),
        Case("SLICE", [inp((3, 4, 5)), ints([1, 0, 2]), ints([2, -1, 3])], {}),
        Case("STRIDED_SLICE", [inp((4, 6, 5)), ints([1, 0, -1]), ints([4, 6, 0]),
                               ints([1, 2, -1])], {}, name="negative-stride"),
        Case("STRIDED_SLICE", [inp((4, 6, 5)), ints([1, 2, 0]), ints([0, 5, 3]),
                               ints([2, 1, 1])],
             {"begin_mask": 4, "end_mask": 1, "shrink_axis_mask": 0}, name="masks"),
        Case("STRIDED_SLICE", [inp((3, 4, 5)), ints([-1, 1, 0]), ints([0, 3, 5]),
                               ints([1, 1, 2])], {"shrink_axis_mask": 1}, name="shrink"),
        Case("DEPTH_TO_SPACE", [inp((1, 3, 4, 8))], {"block_size": 2}),
        Case("SPACE_TO_DEPTH", [inp((2, 4, 6, 3))], {"block_size": 2}),
    ]


CASES = binary_cases() + unary_cases() + conv_cases() + window_cases() + movement_cases()


def case_inputs(model: bytes, case: Case, fp16: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    details = edgeplex.Interpreter(model_content=model).get_input_details()
    xs = [random_array(rng, tuple(d["shape"]), np.float32, case.low, case.high) for d in details]
    return [x.astype(np.float16).astype(np.float32) for x in xs] if fp16 else xs


def fp16_case(case: Case) -> Case:
    """The case with its float constants rounded to float16."""
    def rounded(x: Any) -> Any:
        if isinstance(x, Const) and x.value.dtype == np.float32:
            return Const(x.value.astype(np.float16).astype(np.float32), x.quantization, x.name)
        return x
    return Case(case.op, [rounded(x) for x in case.inputs], case.options, case.tol, case.low,
                case.high, case.name, case.out_dtype)


def assert_gpu_close(got: list[np.ndarray], want: list[np.ndarray], tol: str, fp16: bool,
                     what: str) -> None:
    rtol, scale = TOLERANCES[tol]
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, what
        atol = scale * float(np.max(np.abs(w))) if tol == "sum" else scale
        if fp16:
            rtol, atol = rtol + FP16_RTOL, atol + FP16_ATOL
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


def check_case(case: Case, precision: str) -> None:
    fp16 = precision == "fp16"
    case = fp16_case(case) if fp16 else case
    model = one_op_model(case.op, case.inputs, case.options, out_dtype=case.out_dtype)
    it = gpu_interpreter(model, precision)
    assert_all_on_gpu(it)
    xs = case_inputs(model, case, fp16)
    got = run(it, xs)
    assert_gpu_close(got, run_edgeplex(model, xs), case.tol, fp16, f"{case.id} vs CPU kernels")
    assert_gpu_close(got, run_litert(model, xs), case.tol, fp16, f"{case.id} vs LiteRT")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gpu_op_fp32(case: Case) -> None:
    check_case(case, "fp32")


#: one case per op in fp16 (the first of each op)
FP16_CASES = list({c.op: c for c in reversed(CASES)}.values())


@pytest.mark.parametrize("case", FP16_CASES, ids=lambda c: c.id)
def test_gpu_op_fp16(case: Case) -> None:
    check_case(case, "fp16")


# -- constants the GPU computes at prepare ------------------------------------------------
def _consumer_model(build: Any) -> bytes:
    """x + f(constants) where ``build`` adds the constant-producing ops."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 4, 6), np.float32)
    w = build(g)
    y = g.op("ADD", [x, w], outputs=[g.tensor("y", (2, 4, 6), np.float32)])
    g.output(y)
    return mb.build()


def _sparse_constant(g: Any, dense: np.ndarray, name: str) -> Any:
    """``dense`` (2, 4, 6) stored CSR on the last axis with 2x3 blocks of the last two."""
    blocks = dense.reshape(2, 2, 2, 2, 3).transpose(0, 1, 3, 2, 4)   # (d0, b1, b2, i1, i2)
    present = np.abs(blocks).reshape(2, 2, 2, -1).max(axis=-1) > 0
    segments, indices, values = [0], [], []
    for i in range(2):
        for j in range(2):
            for k in np.flatnonzero(present[i, j]):
                indices.append(int(k))
                values.append(blocks[i, j, k])
            segments.append(len(indices))
    sparsity = Sparsity(
        traversal_order=(0, 1, 2, 3, 4), block_map=(1, 2),
        dim_metadata=(DimensionMetadata("DENSE", 2), DimensionMetadata("DENSE", 2),
                      DimensionMetadata("SPARSE_CSR", 0, np.array(segments, np.int32),
                                        np.array(indices, np.int32)),
                      DimensionMetadata("DENSE", 2), DimensionMetadata("DENSE", 3)))
    return g.constant(name, np.stack(values).reshape(-1).astype(dense.dtype),
                      sparsity=sparsity, shape=dense.shape)


def _block_sparse(dtype: Any) -> np.ndarray:
    w = np.random.default_rng(30).uniform(-1, 1, (2, 4, 6)).astype(dtype)
    mask = np.kron(np.array([[[1, 0], [0, 1]], [[0, 0], [1, 1]]]), np.ones((1, 2, 3)))
    return (w * mask).astype(dtype)


def _dequantize(g: Any, src: Any) -> Any:
    return g.op("DEQUANTIZE", [src], outputs=[g.tensor("w", (2, 4, 6), np.float32)])


def _densify(g: Any, dense: np.ndarray) -> Any:
    sparse = _sparse_constant(g, dense, "sparse")
    return g.op("DENSIFY", [sparse], outputs=[g.tensor("dense", dense.shape, dense.dtype)])


CONSTANT_GRAPHS = {
    "dequantize-fp16": lambda g: _dequantize(g, g.constant(
        "h", np.random.default_rng(31).uniform(-2, 2, (2, 4, 6)).astype(np.float16))),
    "densify-fp32": lambda g: _densify(g, _block_sparse(np.float32)),
    "densify-fp16-dequantize": lambda g: _dequantize(g, _densify(g, _block_sparse(np.float16))),
}


@pytest.mark.parametrize("fold", [False, True], ids=["gpu-does-it", "plan-folds"])
@pytest.mark.parametrize("name", sorted(CONSTANT_GRAPHS))
def test_constant_ops_run_on_the_gpu_at_prepare(name: str, fold: bool) -> None:
    """Without constant folding the GPU takes DEQUANTIZE / DENSIFY and computes
    them at prepare; with it, the plan folds whatever the CPU kernels can and
    the GPU takes the rest. Either way only the ADD dispatches."""
    model = _consumer_model(CONSTANT_GRAPHS[name])
    it = gpu_interpreter(model, fold=fold)
    folded = assert_all_on_gpu(it)
    if not fold:
        assert folded == []
    (kernel,) = it._delegation._kernels            # internal: the compiled partition
    assert len(kernel.dispatches) == 1
    x = np.random.default_rng(32).normal(size=(2, 4, 6)).astype(np.float32)
    got = run(it, [x])
    np.testing.assert_array_equal(got[0], run_litert(model, [x])[0])


def test_runtime_float16_dequantize_costs_no_dispatch() -> None:
    mb = ModelBuilder()
    g = mb.main
    h = g.input("h", (3, 5), np.float16)
    w = g.op("DEQUANTIZE", [h], outputs=[g.tensor("w", (3, 5), np.float32)])
    y = g.op("MUL", [w, w], outputs=[g.tensor("y", (3, 5), np.float32)])
    g.output(y)
    model = mb.build()
    it = gpu_interpreter(model)
    assert_all_on_gpu(it)
    x = np.random.default_rng(33).normal(size=(3, 5)).astype(np.float16)
    np.testing.assert_array_equal(run(it, [x])[0], run_litert(model, [x])[0])


def test_every_required_op_has_a_case() -> None:
    from test_gpu import REQUIRED_OPS
    covered = {c.op for c in CASES} | {"DEQUANTIZE", "DENSIFY"}
    assert set(REQUIRED_OPS) <= covered


# -- properties over random shapes and parameters --------------------------------------------
@st.composite
def broadcast_pair(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes (rank <= 4) that broadcast together."""
    out = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    def side() -> tuple[int, ...]:
        rank = draw(st.integers(0, len(out)))
        tail = out[len(out) - rank:]
        return tuple(d if draw(st.booleans()) else 1 for d in tail)
    return side(), side()


@settings(max_examples=20)
@given(shapes=broadcast_pair(), op=st.sampled_from(sorted(ops_math.BINARY)),
       act=st.sampled_from(ACTS))
def test_binary_broadcasting_property(shapes: tuple, op: str, act: str) -> None:
    """Any broadcast of two float inputs, any binary op: exact except DIV (tolerance ``ulp``)."""
    options = {"fused_activation_function": act} if op in ("ADD", "SUB", "MUL", "DIV") else {}
    case = Case(op, [inp(shapes[0]), inp(shapes[1])], options,
                "ulp" if op == "DIV" else "exact", 0.5, 3.0)
    check_case(case, "fp32")


@settings(max_examples=25)
@given(data=st.data())
def test_strided_slice_property(data: Any) -> None:
    """Random begin/end/strides and begin/end/shrink masks: the GPU's slice arithmetic
    agrees with the CPU kernel's shapes and LiteRT's values (exact)."""
    rank = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    vec = st.lists(st.integers(-6, 6), min_size=rank, max_size=rank)
    begin, end = data.draw(vec), data.draw(vec)
    strides = data.draw(st.lists(st.sampled_from([-2, -1, 1, 2]), min_size=rank,
                                 max_size=rank))
    masks = {k: data.draw(st.integers(0, 2 ** rank - 1))
             for k in ("begin_mask", "end_mask", "shrink_axis_mask")}
    for d in range(rank):
        if masks["shrink_axis_mask"] >> d & 1:
            # a shrunk axis indexes inside the input; with a negative stride LiteRT's
            # loop (start to start + 1, stepping down) copies nothing: not a real case
            assume(-shape[d] <= begin[d] < shape[d] and not masks["begin_mask"] >> d & 1)
            assume(strides[d] > 0)
    inputs = [inp(shape), ints(begin), ints(end), ints(strides)]
    try:
        model = one_op_model("STRIDED_SLICE", inputs, masks)
    except edgeplex.EdgeplexError:
        assume(False)
    out = edgeplex.read_model(model).main.tensors[-1].shape
    assume(all(d > 0 for d in out))
    check_case(Case("STRIDED_SLICE", inputs, masks, "exact"), "fp32")
