"""The execution plan: shape propagation, resizing, data-dependent shapes,
memory planning and the kernel registry, using test-only kernels."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelBuilder, ModelError, UnsupportedOpError
from edgeplex.core.kernel_api import OpContext, Prepared
from edgeplex.core.memory import Interval, plan_arena
from edgeplex.kernels import default_resolver
from edgeplex.kernels.registry import OpResolver, Registration, register


def _take_positive(ctx: OpContext) -> Prepared:
    """A test kernel (custom op TAKE_POSITIVE): the positive values of a
    vector — its output shape depends on the data."""
    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [ins[0][ins[0] > 0]]
    return ctx.done(run, None)


def _resolver() -> OpResolver:
    regs = list(default_resolver().registrations())
    regs.append(Registration("TAKE_POSITIVE", _take_positive, (1, 1), frozenset({"FLOAT32"})))
    return OpResolver(regs)


def _dynamic_model() -> bytes:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (6,), np.float32, shape_signature=(-1,))
    pos = g.op("TAKE_POSITIVE", [x], custom_options=b"", outputs=[g.tensor("pos", (0,))])
    y = g.op("MUL", [pos, pos], outputs=[g.tensor("sq", (0,))])
    z = g.op("ADD", [y, g.constant("one", np.float32([1]))], outputs=[g.tensor("z", (0,))])
    g.output(z)
    return mb.build()


def test_data_dependent_shapes_are_resolved_during_invoke() -> None:
    it = edgeplex.Interpreter(model_content=_dynamic_model(), resolver=_resolver())
    it.allocate_tensors()
    for values in ([1, -2, 3, -4, 5, 0], [-1, -1, -1, -1, -1, 2], [-1] * 6):
        x = np.float32(values)
        it.set_tensor(0, x)
        it.invoke()
        out = it.get_tensor(it.get_output_details()[0]["index"])
        np.testing.assert_array_equal(out, x[x > 0] ** 2 + 1)
        assert tuple(it.get_output_details()[0]["shape"]) == out.shape


def test_resize_input_propagates_shapes() -> None:
    it = edgeplex.Interpreter(model_content=_dynamic_model(), resolver=_resolver())
    it.resize_tensor_input(0, [9], strict=True)
    it.allocate_tensors()
    x = np.arange(-4, 5, dtype=np.float32)
    it.set_tensor(0, x)
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]),
                                  x[x > 0] ** 2 + 1)


def test_static_shapes_propagate_through_allocate() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1, 3), np.float32, shape_signature=(-1, 3))
    g.output(g.op("ADD", [g.op("MUL", [x, x]), g.constant("c", np.float32([1, 2, 3]))]))
    it = edgeplex.Interpreter(model_content=mb.build())
    it.resize_tensor_input(0, [5, 3])
    it.allocate_tensors()
    assert [list(d["shape"]) for d in it.get_tensor_details()] == [
        [5, 3], [5, 3], [3], [5, 3]]
    assert list(it.get_output_details()[0]["shape_signature"]) == [5, 3]


def test_arena_shares_memory_between_disjoint_lifetimes() -> None:
    chain = [Interval(t, 1000, t, t + 1) for t in range(10)]
    plan = plan_arena(chain)
    assert plan.naive_bytes == 10 * 1024
    assert plan.arena_bytes == 2 * 1024  # only neighbours are alive together
    for a in chain:
        for b in chain:
            if a.tensor != b.tensor and a.first <= b.last and b.first <= a.last:
                oa, ob = plan.offsets[a.tensor], plan.offsets[b.tensor]
                assert oa + 1024 <= ob or ob + 1024 <= oa, "live tensors overlap"
    assert plan_arena(chain, share=False).arena_bytes == plan.naive_bytes


def test_arena_plan_never_overlaps_live_tensors_randomized() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        ivs = []
        for t in range(30):
            first = int(rng.integers(0, 40))
            ivs.append(Interval(t, int(rng.integers(1, 5000)), first,
                                first + int(rng.integers(0, 10))))
        plan = plan_arena(ivs)
        for a in ivs:
            for b in ivs:
                if a.tensor < b.tensor and a.first <= b.last and b.first <= a.last:
                    oa, ob = plan.offsets[a.tensor], plan.offsets[b.tensor]
                    assert oa + a.nbytes <= ob or ob + b.nbytes <= oa


def test_unknown_op_version_and_type_are_unsupported_op_errors() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2,), np.float32)
    g.output(g.op("ADD", [x, x], version=99, outputs=[g.tensor("y", (2,))]))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(ADD v99\): op version 99 is not "
                                                 r"supported \(kernels implement versions up"):
        edgeplex.Interpreter(model_content=mb.build()).allocate_tensors()
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2,), np.complex64)
    g.output(g.op("ADD", [x, x], outputs=[g.tensor("y", (2,), np.complex64)]))
    with pytest.raises(UnsupportedOpError, match="type COMPLEX64 is not supported"):
        edgeplex.Interpreter(model_content=mb.build()).allocate_tensors()


def test_duplicate_kernel_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="duplicate kernel registration for ADD"):
        register("ADD", versions=(1, 2), types={"FLOAT32"})(_take_positive)
    resolver = OpResolver([Registration("X", _take_positive, (1, 1), frozenset({"FLOAT32"}))])
    with pytest.raises(ValueError, match="duplicate"):
        resolver.add(Registration("X", _take_positive, (1, 1), frozenset({"FLOAT32"})))
    faster = Registration("X", _take_positive, (1, 1), frozenset({"FLOAT32"}), name="fast")
    resolver.add(faster, replace=True)
    assert [r.name for r in resolver.registrations("X")] == ["fast"]


def test_kernel_output_count_must_match_the_model() -> None:
    def two_outputs(ctx: OpContext) -> Prepared:
        return ctx.done(lambda i, o: None, (1,), (1,))
    resolver = OpResolver([Registration("ADD", two_outputs, (1, 1), frozenset({"FLOAT32"}))])
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (1,))
    g.output(g.op("ADD", [x, x], outputs=[g.tensor("y", (1,))]))
    with pytest.raises(ModelError, match="model gives 1 outputs, the kernel produces 2"):
        edgeplex.Interpreter(model_content=mb.build(), resolver=resolver).allocate_tensors()


def test_ops_on_constants_are_folded_at_allocate_time() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (3,), np.float32)
    half = g.constant("w16", np.float16([1.5, -2.0, 0.25]))
    w = g.op("DEQUANTIZE", [half], outputs=[g.tensor("w", (3,), np.float32)])
    w2 = g.op("MUL", [w, w])
    g.output(g.op("ADD", [x, w2]))
    it = edgeplex.Interpreter(model_content=mb.build(), profile=True)
    it.allocate_tensors()
    it.set_tensor(0, np.float32([1, 2, 3]))
    it.invoke()
    assert [r["op_name"] for r in it.profile_records()] == ["ADD"], "constant ops must fold"
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]),
                                  np.float32([1, 2, 3]) + np.float32([2.25, 4.0, 0.0625]))
    np.testing.assert_array_equal(it.get_tensor(w.index), [1.5, -2.0, 0.25])
