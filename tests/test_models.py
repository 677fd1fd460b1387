"""Whole networks built with the builder, checked end to end against LiteRT.

Float models (issue: the broad float op set): a MobileNetV2-style CNN, a
small U-Net (TRANSPOSE_CONV and RESIZE_BILINEAR up-sampling), a transformer
encoder block, a DS-CNN keyword spotter and an LSTM. Tolerance: rtol 1e-4 and
atol 1e-5 of the output's magnitude — dozens of layers of float32 sums whose
order differs from LiteRT's (observed differences are ~1e-7 to 1e-6 absolute).

Integer models (issue: quantized kernels): the MobileNetV2 and keyword-spotting
networks quantized by edgeplex.hwlab.ptq to full int8 (per-channel weights)
and to the legacy uint8 scheme (per-tensor weights with zero points): outputs
must be bit-exact with LiteRT's builtin kernels.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import pytest

from edgeplex.hwlab import builders
from edgeplex.hwlab.ptq import quantize_model
from oracle import assert_close, random_inputs, run_edgeplex, run_litert

FLOAT_MODELS: dict[str, Callable[[], bytes]] = {
    "mobilenet_v2": lambda: builders.mobilenet_v2(96, 0.35, 10),
    "unet_transpose_conv": lambda: builders.unet(upsample="transpose"),
    "unet_resize": lambda: builders.unet(upsample="resize"),
    "transformer_encoder": builders.transformer_encoder,
    "kws_dscnn": builders.kws_dscnn,
    "lstm_sequence": builders.lstm_sequence,
}


@lru_cache(maxsize=None)
def _float(name: str) -> bytes:
    return FLOAT_MODELS[name]()


def _inputs(name: str, model: bytes, seed: int) -> list[np.ndarray]:
    if name == "transformer_encoder":
        return [np.random.default_rng(seed).integers(0, 100, (1, 16)).astype(np.int32)]
    return random_inputs(model, seed, low=-1.0, high=1.0)


@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_float_model_matches_litert(name: str) -> None:
    model = _float(name)
    for seed in (0, 1):
        ins = _inputs(name, model, seed)
        want = run_litert(model, ins)
        scale = max(float(np.max(np.abs(w))) for w in want)
        assert_close(run_edgeplex(model, ins), want, rtol=1e-4, atol=1e-5 * scale, what=name)


@lru_cache(maxsize=None)
def _quantized(name: str, scheme: str) -> bytes:
    model = _float(name)
    calibration = [_inputs(name, model, seed) for seed in range(3)]
    return quantize_model(model, calibration, scheme)


@pytest.mark.parametrize("scheme", ["int8", "uint8"])
@pytest.mark.parametrize("name", ["mobilenet_v2", "kws_dscnn"])
def test_integer_model_is_bit_exact(name: str, scheme: str) -> None:
    model = _quantized(name, scheme)
    for seed in (3, 4):
        ins = random_inputs(model, seed)
        assert_close(run_edgeplex(model, ins), run_litert(model, ins), 0, 0, exact=True,
                     what=f"{name} {scheme}")


def test_integer_models_use_the_expected_quantization() -> None:
    import edgeplex
    m = edgeplex.read_model(_quantized("mobilenet_v2", "int8")).main
    convs = [op for op in m.operators if op.op == "CONV_2D"]
    w = m.tensors[convs[0].inputs[1]]
    assert w.type_name == "INT8" and w.quantization.per_channel and w.quantization.axis == 0
    assert m.tensors[convs[0].inputs[2]].type_name == "INT32"
    legacy = edgeplex.read_model(_quantized("mobilenet_v2", "uint8")).main
    w = legacy.tensors[[op for op in legacy.operators if op.op == "CONV_2D"][0].inputs[1]]
    assert w.type_name == "UINT8" and not w.quantization.per_channel
