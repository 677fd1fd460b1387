"""L2_NORMALIZATION and LOCAL_RESPONSE_NORMALIZATION against LiteRT.

L2_NORMALIZATION is bit-exact: squares are summed left to right and the
vector divided by max(norm, 1e-6), the same float32 operations in the same
order as LiteRT. LOCAL_RESPONSE_NORMALIZATION reproduces LiteRT's running
window sum exactly, and its beta = 1 and beta = 0.5 shortcuts (reciprocal,
reciprocal square root) are exact too; for other betas LiteRT raises to the
power with Eigen's vectorized pow, which differs from the C library's powf
by at most 2 ulp, hence rtol=1e-6 there (2 ulp = 2.4e-7 relative).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import check, inp, one_op_model, random_array, run_litert

import edgeplex
from edgeplex import ModelBuilder
from edgeplex.core.errors import ModelError, UnsupportedOpError

POW_TOLERANCE = dict(rtol=1e-6, atol=0.0)


def rand(shape, seed=0, low=-3.0, high=3.0):
    """Uniform float32 values."""
    return random_array(np.random.default_rng(seed), tuple(shape), np.dtype(np.float32),
                        low, high)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 33), (1, 2, 3, 8), (1, 1, 2, 2, 7),
                                   (4, 1)])
@pytest.mark.parametrize("version", [1, 2])
def test_l2_normalization(shape, version):
    model = one_op_model("L2_NORMALIZATION", [inp(shape)], version=version)
    check(model, [rand(shape)], exact=True)


@pytest.mark.parametrize("scale", [0.0, 1e-8, 1e-6, 1e-3])
def test_l2_normalization_epsilon(scale):
    """Norms below 1e-6 are clamped to 1e-6 (TFLite clamps the norm, not its square)."""
    model = one_op_model("L2_NORMALIZATION", [inp((3, 4))])
    x = rand((3, 4)) * np.float32(scale)
    x[1] = [1e-7, -2e-7, 0, 3e-7]
    check(model, [x], exact=True)


def test_l2_normalization_fused_activation_rejected():
    model = one_op_model("L2_NORMALIZATION", [inp((2, 3))],
                         {"fused_activation_function": "RELU"}, out_shapes=[(2, 3)])
    with pytest.raises(RuntimeError):
        run_litert(model, [rand((2, 3))])
    with pytest.raises(UnsupportedOpError, match="L2_NORMALIZATION.*fused activation RELU"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


LRN_OPTIONS = [
    (0, 1.0, 1.0, 0.5), (1, 1.0, 0.1, 0.75), (2, 2.0, 1e-4, 0.75), (5, 1.0, 0.5, 1.0),
    (10, 0.5, 2.0, 0.3), (3, 0.0, 1.0, 0.5), (2, 1.0, 1.0, 1.0), (4, 1.5, 0.3, 0.2),
]


@pytest.mark.parametrize("radius,bias,alpha,beta", LRN_OPTIONS)
@pytest.mark.parametrize("depth", [1, 3, 8, 17])
def test_local_response_normalization(radius, bias, alpha, beta, depth):
    model = one_op_model("LOCAL_RESPONSE_NORMALIZATION", [inp((2, 3, 2, depth))],
                         {"radius": radius, "bias": bias, "alpha": alpha, "beta": beta})
    tolerance = dict(exact=True) if beta in (0.5, 1.0) else POW_TOLERANCE
    check(model, [rand((2, 3, 2, depth), seed=depth)], **tolerance)


@given(radius=st.integers(0, 6), bias=st.floats(0.5, 3.0), alpha=st.floats(1e-4, 2.0),
       beta=st.sampled_from([0.5, 1.0, 0.75, 0.25, 2.0]), depth=st.integers(1, 12))
def test_local_response_normalization_hypothesis(radius, bias, alpha, beta, depth):
    model = one_op_model("LOCAL_RESPONSE_NORMALIZATION", [inp((1, 2, 3, depth))],
                         {"radius": radius, "bias": bias, "alpha": alpha, "beta": beta})
    tolerance = dict(exact=True) if beta in (0.5, 1.0) else POW_TOLERANCE
    check(model, [rand((1, 2, 3, depth), seed=radius)], **tolerance)


@pytest.mark.parametrize("shape,options,match", [
    ((2, 3, 4), {"radius": 1, "bias": 1.0, "alpha": 1.0, "beta": 0.5}, "4-D"),
    ((1, 2, 3, 4), {"radius": -1, "bias": 1.0, "alpha": 1.0, "beta": 0.5}, "radius -1"),
])
def test_local_response_normalization_bad_model(shape, options, match):
    model = one_op_model("LOCAL_RESPONSE_NORMALIZATION", [inp(shape)], options,
                         out_shapes=[shape])
    with pytest.raises(ModelError, match=f"LOCAL_RESPONSE_NORMALIZATION.*{match}"):
        edgeplex.Interpreter(model_content=model).allocate_tensors()


def test_normalization_model():
    """LRN feeding L2_NORMALIZATION, then LRN again (beta 0.5: all exact)."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 4, 3, 6), np.float32)
    opts = {"radius": 2, "bias": 1.0, "alpha": 0.2, "beta": 0.5}
    a = g.op("LOCAL_RESPONSE_NORMALIZATION", [x], opts)
    b = g.op("L2_NORMALIZATION", [a])
    c = g.op("LOCAL_RESPONSE_NORMALIZATION", [b], {**opts, "radius": 1})
    g.output(b, c)
    check(mb.build(), [rand((1, 4, 3, 6))], exact=True)
