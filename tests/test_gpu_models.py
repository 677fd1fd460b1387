"""The seven MediaPipe face models on delegates ["gpu", "cpu"]: every op lands on
the GPU, tensors cross the host boundary only at the model's inputs and
outputs, and the outputs match LiteRT.

The DEQUANTIZE / DENSIFY nodes that unpack the float16 and sparse weights are
constant work done at prepare: the plan folds those its CPU kernels can
(the report lists them as "folded") and the GPU takes the rest; with folding
off, the GPU takes all of them (test_mediapipe_on_gpu_without_folding).

Tolerance, fp32: rtol 1e-4 and atol 1e-4 x the output's largest magnitude,
as for the CPU kernels (tests/test_mediapipe.py): these CNNs chain 50-100
convolutions, each summing up to a few thousand products in another order
than LiteRT, so float32 rounding differences compound with depth; observed
differences are ~2e-6 of the output's scale.

Tolerance, fp16 storage: every activation and weight is rounded to float16
(unit roundoff 2^-11 ~ 4.9e-4) at every layer, so the error is a random
walk of ~depth roundings amplified by the layers' gains: we allow atol
1e-2 x the output's scale (observed: 4.9e-4 to 2.3e-3 over the seven
models), still tight enough that a wrong op (or a lost activation) fails.
"""
from __future__ import annotations

import numpy as np
import pytest
from oracle import random_inputs, run_litert
from test_gpu import assert_all_on_gpu, gpu_interpreter, run

from edgeplex.hwlab.zoo import MEDIAPIPE_MODELS, FetchError, mediapipe_model

#: fp16 runs cost a second set of programs: two models, the sparse one (DENSIFY) and
#: the one with the largest observed fp16 error among them
FP16_MODELS = ("face_detection_full_range_sparse", "iris_landmark")


def _model(name: str) -> bytes:
    try:
        return mediapipe_model(name)
    except FetchError as e:  # no package index: fail loudly, never skip
        pytest.fail(f"cannot fetch the MediaPipe models: {e}")


def _check(name: str, precision: str, rtol: float, scale_atol: float,
           fold: bool = True) -> None:
    model = _model(name)
    it = gpu_interpreter(model, precision, fold)
    folded = assert_all_on_gpu(it)
    assert fold or not folded
    report = it.placement
    assert [p.delegate for p in report.partitions] == ["gpu"]
    inputs = {d["name"] for d in it.get_input_details()}
    outputs = {d["name"] for d in it.get_output_details()}
    assert {(t.tensor, t.src, t.dst) for t in report.transfers} == \
        {(n, "host", "gl") for n in inputs} | {(n, "gl", "host") for n in outputs}
    xs = random_inputs(model, seed=0, low=-1.0, high=1.0)
    got, want = run(it, xs), run_litert(model, xs)
    for g, w, d in zip(got, want, it.get_output_details()):
        scale = float(np.max(np.abs(w)))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=scale_atol * scale,
                                   err_msg=f"{name} ({precision}) output {d['name']!r}")


@pytest.mark.parametrize("name", MEDIAPIPE_MODELS)
def test_mediapipe_on_gpu_fp32(name: str) -> None:
    _check(name, "fp32", 1e-4, 1e-4)


def test_mediapipe_on_gpu_without_folding() -> None:
    _check("face_detection_full_range_sparse", "fp32", 1e-4, 1e-4, fold=False)


@pytest.mark.parametrize("name", FP16_MODELS)
def test_mediapipe_on_gpu_fp16(name: str) -> None:
    _check(name, "fp16", 0.0, 1e-2)
