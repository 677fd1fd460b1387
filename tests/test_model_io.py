"""Reading, writing and building .tflite models (round trips checked by LiteRT)."""
from __future__ import annotations

import mmap

import numpy as np
import pytest

import edgeplex
from edgeplex import ModelBuilder, Quantization
from edgeplex.core.schema import Options, options_for
from oracle import assert_close, check_roundtrip, random_inputs, run_litert


def _small_model() -> bytes:
    mb = ModelBuilder(description="small test model")
    g = mb.main
    x = g.input("x", (1, 4, 4, 3), np.float32, shape_signature=(-1, 4, 4, 3))
    c = g.constant("c", np.arange(3, dtype=np.float32))
    y = g.op("ADD", [x, c], {"fused_activation_function": "RELU6"})
    z = g.op("MUL", [y, y])
    g.output(z)
    mb.signature("serving_default", {"x": x}, {"z": z})
    mb.metadata("min_runtime_version", b"1.5.0\0")
    return mb.build()


def test_reader_exposes_model_structure() -> None:
    m = edgeplex.read_model(_small_model())
    assert m.description == "small test model"
    sg = m.main
    assert [t.name for t in sg.tensors] == ["x", "c", "add_0", "mul_1"]
    x, c = sg.tensors[0], sg.tensors[1]
    assert x.shape == (1, 4, 4, 3) and x.shape_signature == (-1, 4, 4, 3)
    assert c.is_constant and not c.data.flags.writeable
    np.testing.assert_array_equal(c.data, [0, 1, 2])
    add, mul = sg.operators
    assert (add.op, add.version, add.inputs, add.outputs) == ("ADD", 1, (0, 1), (2,))
    assert add.options.fused_activation_function == "RELU6"
    assert mul.options.fused_activation_function == "NONE"
    assert m.signatures[0].key == "serving_default"
    assert dict(m.signatures[0].inputs) == {"x": 0}
    assert m.metadata["min_runtime_version"] == b"1.5.0\0"


def test_constants_are_views_into_the_file(tmp_path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(_small_model())
    m = edgeplex.read_model(path)
    data = m.main.tensors[1].data
    base = data
    while isinstance(base, np.ndarray):
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else base
    assert isinstance(owner, mmap.mmap), "constant data should view the mapped file"
    from_bytes = edgeplex.read_model(path.read_bytes()).main.tensors[1].data
    assert not from_bytes.flags.owndata


def test_quantization_and_per_channel_axis_round_trip() -> None:
    mb = ModelBuilder()
    g = mb.main
    w = g.constant("w", np.ones((4, 2), np.int8),
                   quantization=Quantization.of([0.1, 0.2, 0.3, 0.4], 0, axis=0))
    x = g.input("x", (1, 2), np.float32)
    y = g.op("ADD", [x, x])
    g.output(y)
    del w
    m = edgeplex.read_model(edgeplex.write_model(edgeplex.read_model(mb.build())))
    q = m.main.tensors[0].quantization
    assert q.per_channel and q.axis == 0
    np.testing.assert_allclose(q.scale, [0.1, 0.2, 0.3, 0.4], rtol=1e-7)
    np.testing.assert_array_equal(q.zero_point, [0, 0, 0, 0])


def test_builder_model_round_trips_through_litert() -> None:
    model = _small_model()
    rewritten = check_roundtrip(model)
    assert edgeplex.read_model(rewritten).metadata == edgeplex.read_model(model).metadata


def test_external_buffers_are_read_and_litert_accepts_them() -> None:
    model = _small_model()
    external = edgeplex.write_model(edgeplex.read_model(model), external_buffers=True)
    m = edgeplex.read_model(external)
    np.testing.assert_array_equal(m.main.tensors[1].data, [0, 1, 2])
    ins = random_inputs(model)
    assert_close(run_litert(external, ins), run_litert(model, ins), 0, 0, exact=True)


def test_options_codec_round_trips_every_field_kind() -> None:
    opts = options_for("STRIDED_SLICE", {"begin_mask": 5, "shrink_axis_mask": 2, "offset": True})
    assert opts.begin_mask == 5 and opts.offset is True and opts.end_mask == 0
    reshape = options_for("RESHAPE", {"new_shape": (1, -1)})
    assert reshape.new_shape == (1, -1)
    var = options_for("VAR_HANDLE", {"container": "c", "shared_name": "v"})
    assert (var.container, var.shared_name) == ("c", "v")
    assert options_for("RELU") == Options(None)
    with pytest.raises(edgeplex.ModelError, match="stride_x"):
        options_for("CONV_2D", {"stride_x": 1})
    with pytest.raises(edgeplex.ModelError, match="takes no builtin options"):
        options_for("RELU", {"alpha": 1})


def test_builder_rejects_foreign_tensors_and_negative_shapes() -> None:
    a, b = ModelBuilder(), ModelBuilder()
    x = a.main.input("x", (1,))
    with pytest.raises(edgeplex.ModelError, match="not a tensor of subgraph"):
        b.main.op("ADD", [x, x])
    with pytest.raises(edgeplex.ModelError, match="negative dimension"):
        a.main.input("y", (1, -2))


def test_enum_option_values_are_checked_when_written() -> None:
    mb = ModelBuilder()
    x = mb.main.input("x", (1,))
    y = mb.main.op("ADD", [x, x], {"fused_activation_function": "RELU7"}, outputs=[
        mb.main.tensor("y", (1,))])
    mb.main.output(y)
    with pytest.raises(edgeplex.ModelError, match="RELU7"):
        mb.build()
