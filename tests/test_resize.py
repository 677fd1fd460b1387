"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR against LiteRT.

Every comparison is exact. Nearest neighbour is a pure gather; integer
bilinear is integer (int8/int16) or float32-then-truncate (uint8) arithmetic
done in the same order as LiteRT; float32 bilinear accumulates the same
float32 products in the same order as LiteRT's optimized kernel (and the 2x
special case averages pairwise like it), so even float results agree bit for
bit - a tolerance would only hide an index or weight error.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import Quantization, check, const, inp, one_op_model, random_array, run_litert

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import ModelError, UnsupportedOpError
from edgeplex.core.kernel_api import OpContext, TensorSpec
from edgeplex.kernels import default_resolver

OPTIONS = [(False, False), (True, False), (False, True), (True, True)]
BILINEAR_DTYPES = [np.float32, np.uint8, np.int8, np.int16]
NEAREST_DTYPES = [np.float32, np.float16, np.uint8, np.int8, np.int16, np.int32, np.bool_]


def rand(shape, dtype=np.float32, seed=0):
    """Random values of any dtype (full int8/uint8/int16 range)."""
    return random_array(np.random.default_rng(seed), tuple(shape), np.dtype(dtype))


def resize_model(op, in_shape, size, dtype, align=False, half=False, version=1):
    """A one-op resize model with a constant size."""
    return one_op_model(op, [inp(in_shape, dtype), const(size, np.int32)],
                        {"align_corners": align, "half_pixel_centers": half}, version=version)


def options_for(op):
    """Option pairs the op accepts (bilinear rejects both together)."""
    return [o for o in OPTIONS if op != "RESIZE_BILINEAR" or not all(o)]


IN_SIZES = [(1, 1), (2, 3), (4, 4), (5, 7)]
OUT_SIZES = [(1, 1), (1, 3), (3, 5), (4, 4), (8, 8), (13, 17), (16, 2)]


@pytest.mark.parametrize("op,dtype", [("RESIZE_BILINEAR", d) for d in BILINEAR_DTYPES]
                         + [("RESIZE_NEAREST_NEIGHBOR", d) for d in NEAREST_DTYPES])
def test_resize_grid(op, dtype):
    """Up- and downscaling, every option pair, odd sizes, 1 and 3 channels."""
    for (h, w) in IN_SIZES:
        for size in OUT_SIZES + [(2 * h, 2 * w)]:
            for align, half in options_for(op):
                for c in (1, 3):
                    model = resize_model(op, (2, h, w, c), size, dtype, align, half)
                    check(model, [rand((2, h, w, c), dtype, seed=h * w + c)], exact=True,
                          what=f"{op} {(h, w)}->{size} align={align} half={half} c={c}")


@pytest.mark.parametrize("dtype", BILINEAR_DTYPES)
def test_bilinear_upscale_by_8_depth_8(dtype):
    """Half-pixel 8x upscale with depth % 8 == 0 (LiteRT has a special uint8 kernel)."""
    model = resize_model("RESIZE_BILINEAR", (1, 3, 2, 16), (24, 16), dtype, half=True)
    check(model, [rand((1, 3, 2, 16), dtype)], exact=True)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8])
@pytest.mark.parametrize("half", [False, True])
def test_bilinear_integer_extremes(dtype, half):
    """Type-bound values next to each other, upscaled with half-pixel
    extrapolated weights at the border: no overflow, exact rounding."""
    info = np.iinfo(dtype)
    x = np.where(np.indices((1, 3, 4, 2)).sum(axis=0) % 2 == 0, info.min, info.max).astype(dtype)
    model = resize_model("RESIZE_BILINEAR", (1, 3, 4, 2), (11, 13), dtype, half=half)
    check(model, [x], exact=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.bool_, np.int16, np.float32])
def test_nearest_index_formula_per_type(dtype):
    """2 -> 82 is a size where LiteRT's fixed-point index formula (one-byte
    types) and its float formula (others) disagree; both must be followed."""
    model = resize_model("RESIZE_NEAREST_NEIGHBOR", (1, 2, 3, 2), (82, 123), dtype)
    check(model, [rand((1, 2, 3, 2), dtype)], exact=True)


@given(h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 13), ow=st.integers(1, 13),
       c=st.integers(1, 4), options=st.sampled_from(OPTIONS[:3]),
       op=st.sampled_from(["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"]),
       dtype=st.sampled_from(BILINEAR_DTYPES))
def test_resize_hypothesis(h, w, oh, ow, c, options, op, dtype):
    model = resize_model(op, (1, h, w, c), (oh, ow), dtype, *options)
    check(model, [rand((1, h, w, c), dtype, seed=oh * ow)], exact=True)


@pytest.mark.parametrize("op", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
def test_resize_quantized_tensors_keep_raw_values(op):
    q = Quantization.of(0.1, 3)
    model = one_op_model(op, [inp((1, 3, 3, 2), np.int8, quantization=q),
                              const([5, 4], np.int32)], {"half_pixel_centers": True},
                         out_quantization=q)
    check(model, [rand((1, 3, 3, 2), np.int8)], exact=True)


@pytest.mark.parametrize("op,dtype", [("RESIZE_BILINEAR", np.float32),
                                      ("RESIZE_BILINEAR", np.int8),
                                      ("RESIZE_NEAREST_NEIGHBOR", np.uint8)])
def test_resize_non_constant_size(op, dtype):
    """A size input computed at invoke: the output shape follows the data."""
    model = one_op_model(op, [inp((1, 4, 3, 2), dtype), inp((2,), np.int32)],
                         {"half_pixel_centers": True})
    x = rand((1, 4, 3, 2), dtype)
    for size in ([7, 5], [2, 2], [7, 5]):
        got = check(model, [x, np.array(size, np.int32)], exact=True)
        assert got[0].shape == (1, *size, 2)


def test_bilinear_align_and_half_pixel_rejected():
    model = one_op_model("RESIZE_BILINEAR", [inp((1, 2, 2, 1)), const([4, 4], np.int32)],
                         {"align_corners": True, "half_pixel_centers": True},
                         out_shapes=[(1, 4, 4, 1)])
    with pytest.raises(RuntimeError):
        run_litert(model, [rand((1, 2, 2, 1))])
    with pytest.raises(ModelError, match="RESIZE_BILINEAR.*align_corners and half_pixel"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


@pytest.mark.parametrize("in_shape,size,size_dtype,match", [
    ((1, 2, 2, 1), [0, 4], np.int32, "must be positive"),
    ((2, 2, 1), [4, 4], np.int32, "4-D"),
    ((1, 2, 2, 1), [4, 4], np.int64, "INT32 vector"),
    ((1, 2, 2, 1), [4, 4, 1], np.int32, "INT32 vector"),
])
def test_bilinear_bad_inputs(in_shape, size, size_dtype, match):
    model = one_op_model("RESIZE_BILINEAR", [inp(in_shape), const(size, size_dtype)],
                         out_shapes=[(1, 4, 4, 1)])
    with pytest.raises(ModelError, match=f"RESIZE_BILINEAR.*{match}"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_bilinear_int32_unsupported():
    model = one_op_model("RESIZE_BILINEAR", [inp((1, 2, 2, 1), np.int32),
                                             const([4, 4], np.int32)], out_shapes=[(1, 4, 4, 1)])
    with pytest.raises(UnsupportedOpError, match="RESIZE_BILINEAR.*type INT32"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_resize_chain_model():
    """NEAREST (align_corners) feeding BILINEAR (half-pixel) then a 2x BILINEAR."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 5, 4, 3), np.float32)
    a = g.op("RESIZE_NEAREST_NEIGHBOR", [x, g.constant("s1", np.array([9, 7], np.int32))],
             {"align_corners": True})
    b = g.op("RESIZE_BILINEAR", [a, g.constant("s2", np.array([4, 6], np.int32))],
             {"half_pixel_centers": True}, version=3)
    c = g.op("RESIZE_BILINEAR", [b, g.constant("s3", np.array([8, 12], np.int32))])
    g.output(c)
    check(mb.build(), [rand((1, 5, 4, 3))], exact=True)


# -- the MediaPipe models that use RESIZE_BILINEAR ------------------------------------------
@pytest.fixture(scope="module")
def mediapipe():
    """Reads a MediaPipe model, skipping (with the reason) when it cannot be fetched."""
    from edgeplex.hwlab.zoo import FetchError, mediapipe_model

    def get(name):
        try:
            return edgeplex.read_model(mediapipe_model(name))
        except FetchError as e:
            pytest.skip(f"MediaPipe models unavailable: {e}")
    return get


@pytest.mark.parametrize("name", ["face_detection_full_range",
                                  "face_detection_full_range_sparse"])
def test_mediapipe_resize_ops(mediapipe, name):
    """Each RESIZE_BILINEAR of the model (v1 / v3, half-pixel) resolves to our
    kernel and matches LiteRT on a one-op model of the same geometry."""
    model = mediapipe(name)
    sg = model.subgraphs[0]
    resizes = [op for op in sg.operators if op.op == "RESIZE_BILINEAR"]
    assert len(resizes) == 3
    for op in resizes:
        ins = [TensorSpec(sg.tensors[t], sg.tensors[t].shape, sg.tensors[t].data)
               for t in op.inputs]
        outs = [TensorSpec(sg.tensors[t], sg.tensors[t].shape) for t in op.outputs]
        ctx = OpContext(op, sg, model, ins, outs)
        prepared = default_resolver().prepare(ctx)
        assert prepared.output_shapes == [sg.tensors[op.outputs[0]].shape]
        size = sg.tensors[op.inputs[1]].data
        one = one_op_model("RESIZE_BILINEAR", [inp(ins[0].shape), const(size)],
                           op.options.to_dict(), version=op.version)
        check(one, [rand(ins[0].shape, seed=op.index)], exact=True, what=f"{name} {op.index}")
