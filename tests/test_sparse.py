"""DENSIFY against LiteRT: synthetic TACO encodings (CSR, block-sparse,
permuted traversal) and every DENSIFY op of the MediaPipe sparse model.

DENSIFY moves stored values into place, so every comparison is exact.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelBuilder, ModelError, UnsupportedOpError
from edgeplex.core.ir import DimensionMetadata, Sparsity
from oracle import assert_close, run_edgeplex, run_litert

DENSE, CSR = "DENSE", "SPARSE_CSR"


def encode(dense: np.ndarray, order: Sequence[int], block_map: Sequence[int],
           block_size: Sequence[int], formats: Sequence[str]) -> tuple[np.ndarray, Sparsity]:
    """A straightforward (recursive) TACO encoder, independent of the kernel."""
    rank, levels = dense.ndim, len(order)
    blocked = list(dense.shape)
    for k, d in enumerate(block_map):
        blocked[d] //= block_size[k]
    expanded = blocked + list(block_size)
    sizes = [expanded[order[lv]] for lv in range(levels)]
    segments: dict[int, list[int]] = {lv: [0] for lv in range(levels) if formats[lv] == CSR}
    indices: dict[int, list[int]] = {lv: [] for lv in segments}
    values: list = []

    def position(coord: list[int]) -> tuple[int, ...]:
        idx = [0] * rank
        for lv in range(rank):
            idx[order[lv]] = coord[lv]
        for lv in range(rank, levels):
            k = order[lv] - rank
            idx[block_map[k]] = idx[block_map[k]] * block_size[k] + coord[lv]
        return tuple(idx)

    def any_nonzero(level: int, prefix: list[int]) -> bool:
        if level == levels:
            return dense[position(prefix)] != 0
        return any(any_nonzero(level + 1, prefix + [i]) for i in range(sizes[level]))

    def visit(level: int, prefix: list[int]) -> None:
        if level == levels:
            values.append(dense[position(prefix)])
            return
        for i in range(sizes[level]):
            if formats[level] == DENSE or any_nonzero(level + 1, prefix + [i]):
                if formats[level] == CSR:
                    indices[level].append(i)
                visit(level + 1, prefix + [i])
        if formats[level] == CSR:
            segments[level].append(len(indices[level]))
    visit(0, [])
    meta = tuple(DimensionMetadata(DENSE, sizes[lv]) if formats[lv] == DENSE else
                 DimensionMetadata(CSR, 0, np.array(segments[lv]), np.array(indices[lv]))
                 for lv in range(levels))
    return np.array(values, dense.dtype), Sparsity(tuple(order), tuple(block_map), meta)


def densify_model(values: np.ndarray, sparsity: Sparsity, shape: Sequence[int],
                  then_dequantize: bool = False) -> bytes:
    """A model computing DENSIFY of one sparse constant (optionally then DEQUANTIZE)."""
    mb = ModelBuilder()
    g = mb.main
    w = g.constant("w", values, sparsity=sparsity, shape=shape)
    y = g.tensor("dense", shape, values.dtype)
    g.op("DENSIFY", [w], outputs=[y])
    if then_dequantize:
        y = g.op("DEQUANTIZE", [y], dtype=np.float32, version=3)
    g.output(y)
    return mb.build()


def sparse_array(rng: np.random.Generator, shape: Sequence[int], dtype: object,
                 density: float = 0.3, block: Sequence[int] | None = None) -> np.ndarray:
    """Random values with many zeros (whole zero blocks when ``block`` is given)."""
    values = rng.integers(1, 100, shape).astype(dtype)
    if block is None:
        return np.where(rng.random(shape) < density, values, 0).astype(dtype)
    coarse = [s // b for s, b in zip(shape, block)]
    keep = rng.random(coarse) < density
    for axis, b in enumerate(block):
        keep = np.repeat(keep, b, axis=axis)
    return np.where(keep, values, 0).astype(dtype)


def check_densify(dense: np.ndarray, order: Sequence[int], block_map: Sequence[int] = (),
                  block_size: Sequence[int] = (), formats: Sequence[str] | None = None) -> None:
    formats = formats or [DENSE] * (len(order) - 1) + [CSR]
    values, sparsity = encode(dense, order, block_map, block_size, formats)
    model = densify_model(values, sparsity, dense.shape)
    got, want = run_edgeplex(model, []), run_litert(model, [])
    assert_close(got, want, 0, 0, exact=True, what="DENSIFY")
    np.testing.assert_array_equal(got[0], dense)


DTYPES = [np.float32, np.float16, np.int8]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,formats", [
    ((7,), [CSR]),
    ((5, 6), [DENSE, CSR]),
    ((5, 6), [CSR, CSR]),
    ((5, 6), [CSR, DENSE]),
    ((3, 4, 5), [DENSE, CSR, CSR]),
    ((2, 3, 2, 4), [DENSE, DENSE, DENSE, CSR]),
])
def test_densify_csr(dtype: object, shape: tuple, formats: list) -> None:
    dense = sparse_array(np.random.default_rng(len(shape)), shape, dtype)
    check_densify(dense, list(range(len(shape))), formats=formats)


@pytest.mark.parametrize("order", [(1, 0), (0, 1)])
def test_densify_traversal_order(order: tuple) -> None:
    dense = sparse_array(np.random.default_rng(3), (4, 7), np.float32)
    check_densify(dense, order, formats=[DENSE, CSR])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,block_map,block_size,order,formats", [
    # 2-D block sparse as produced by the TFLite converter: 1x4 blocks.
    ((4, 8), (1,), (4,), (0, 1, 2), [DENSE, CSR, DENSE]),
    ((6, 8), (0, 1), (2, 2), (0, 1, 2, 3), [DENSE, CSR, DENSE, DENSE]),
    ((6, 8), (0, 1), (3, 4), (1, 0, 3, 2), [DENSE, CSR, DENSE, DENSE]),
    ((4, 6), (0,), (2,), (0, 1, 2), [CSR, CSR, DENSE]),
])
def test_densify_block_sparse(dtype: object, shape: tuple, block_map: tuple, block_size: tuple,
                              order: tuple, formats: list) -> None:
    dense = sparse_array(np.random.default_rng(7), shape, dtype, density=0.5,
                         block=[block_size[block_map.index(d)] if d in block_map else 1
                                for d in range(len(shape))])
    check_densify(dense, order, block_map, block_size, formats)


def test_densify_single_value_empty_rows() -> None:
    dense = np.zeros((4, 5), np.float32)
    dense[2, 3] = 7.5
    check_densify(dense, (0, 1), formats=[CSR, CSR])
    check_densify(dense, (0, 1))


def test_densify_mediapipe_sparse_model() -> None:
    """Every DENSIFY op of face_detection_full_range_sparse (float16 weights
    that DEQUANTIZE then widens) gives LiteRT's dense values exactly."""
    from edgeplex.hwlab.zoo import FetchError, mediapipe_model
    try:
        blob = mediapipe_model("face_detection_full_range_sparse")
    except FetchError as e:
        pytest.fail(f"cannot fetch the MediaPipe models (no package index?): {e}")
    model = edgeplex.read_model(blob)
    sg = model.main
    ops = [op for op in sg.operators if op.op == "DENSIFY"]
    assert len(ops) == 46
    for op in ops:
        t = sg.tensors[op.inputs[0]]
        assert t.type_name == "FLOAT16" and t.sparsity is not None
        sub = densify_model(t.data, t.sparsity, t.shape, then_dequantize=True)
        assert_close(run_edgeplex(sub, []), run_litert(sub, []), 0, 0, exact=True,
                     what=f"DENSIFY op {op.index}")


def _broken(sparsity: Sparsity, level: int, **changes: object) -> Sparsity:
    meta = list(sparsity.dim_metadata)
    old = meta[level]
    meta[level] = DimensionMetadata(old.format, old.dense_size,
                                    changes.get("segments", old.array_segments),
                                    changes.get("indices", old.array_indices))
    return Sparsity(sparsity.traversal_order, sparsity.block_map, tuple(meta))


@pytest.mark.parametrize("what,changes,message", [
    ("short segments", {"segments": "drop2"}, "array_segments"),
    ("index past the dimension", {"indices": "grow"}, "outside the dense shape"),
    ("segments past the indices", {"segments": "stretch"}, "do not index"),
])
def test_densify_rejects_malformed_sparsity(what: str, changes: dict, message: str) -> None:
    """Malformed encodings are a ModelError naming the op at allocate_tensors
    (TFLite's converter skips or overruns silently)."""
    values, sparsity = encode(sparse_array(np.random.default_rng(1), (4, 5), np.float32, 0.6),
                              (0, 1), (), (), [DENSE, CSR])
    meta = sparsity.dim_metadata[1]
    edits = {"drop2": meta.array_segments[:-2], "grow": meta.array_indices + 5,
             "stretch": meta.array_segments + 3}
    broken = _broken(sparsity, 1, **{k: edits[v] for k, v in changes.items()})
    it = edgeplex.Interpreter(model_content=densify_model(values, broken, (4, 5)))
    with pytest.raises(ModelError, match=rf"DENSIFY.*{message}"):
        it.allocate_tensors()


def test_densify_rejects_a_dense_input() -> None:
    mb = ModelBuilder()
    g = mb.main
    w = g.constant("w", np.ones((2, 2), np.float32))
    y = g.tensor("dense", (2, 2), np.float32)
    g.op("DENSIFY", [w], outputs=[y])
    g.output(y)
    it = edgeplex.Interpreter(model_content=mb.build())
    with pytest.raises(ModelError, match="DENSIFY.*sparsity"):
        it.allocate_tensors()


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.float64])
def test_densify_unsupported_types(dtype: object) -> None:
    """LiteRT densifies only FLOAT32, FLOAT16 and INT8; so do we."""
    dense = sparse_array(np.random.default_rng(2), (3, 4), dtype)
    values, sparsity = encode(dense, (0, 1), (), (), [DENSE, CSR])
    it = edgeplex.Interpreter(model_content=densify_model(values, sparsity, (3, 4)))
    with pytest.raises(UnsupportedOpError, match=rf"DENSIFY.*type {np.dtype(dtype).name.upper()}"):
        it.allocate_tensors()
