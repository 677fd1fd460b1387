"""The "gl" memory domain: tensors held in OpenGL storage buffers.

A :class:`GLTensor` is the value the framework moves between steps: a
buffer plus the tensor's shape and dtype. Values are stored at the
delegate's precision (float32, or float16 pairs packed into 32-bit words
for ``precision="fp16"``) whatever their declared float type; ``to_host``
returns the declared dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: buffers are padded to this many bytes so vec4 loads of the last elements stay inside
ALIGN = 16


@dataclass(eq=False)
class GLTensor:
    """A tensor living in a GL storage buffer."""

    buffer: Any
    shape: tuple[int, ...]
    dtype: np.dtype
    fp16: bool
    device: Any

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    def numpy(self) -> np.ndarray:
        """A host copy in the declared dtype."""
        storage = np.float16 if self.fp16 else np.float32
        raw = self.buffer.read(size=self.size * np.dtype(storage).itemsize)
        return np.frombuffer(raw, storage).astype(self.dtype).reshape(self.shape)

    def __repr__(self) -> str:
        return (f"<GLTensor {np.dtype(self.dtype).name}{list(self.shape)} "
                f"{'fp16' if self.fp16 else 'fp32'} storage>")


def storage_bytes(count: int, kind: str, fp16: bool) -> int:
    """Bytes of a buffer holding ``count`` elements of ``kind``, padded."""
    item = 2 if (kind == "data" and fp16) else 4
    n = max(int(count), 1) * item
    return (n + ALIGN - 1) // ALIGN * ALIGN


def encode(array: np.ndarray, kind: str, fp16: bool) -> bytes:
    """Buffer contents for ``array`` as a ``kind`` operand (see glsl.Operand), padded."""
    if kind == "i32":
        data = np.ascontiguousarray(array, np.int32)
    elif kind == "data" and fp16:
        data = np.ascontiguousarray(array, np.float16)
    else:
        data = np.ascontiguousarray(array, np.float32)
    raw = data.tobytes()
    pad = storage_bytes(data.size, kind, fp16) - len(raw)
    return raw + b"\0" * pad
