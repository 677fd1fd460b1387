"""Malformed models: each gives an edgeplex.ModelError naming the problem and the
element at fault — never a numpy traceback, crash, hang or huge allocation."""
from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest
import tflite

import edgeplex
from edgeplex import ModelBuilder, ModelError


def _chain() -> bytes:
    """x -> ADD(x, c) -> MUL(., .) with a constant c."""
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3))
    y = g.op("ADD", [x, g.constant("c", np.ones(3, np.float32))])
    g.output(g.op("MUL", [y, y]))
    return mb.build()


def _open(model: bytes) -> edgeplex.Interpreter:
    it = edgeplex.Interpreter(model_content=model)
    it.allocate_tensors()
    return it


def _patch_u32(model: bytes, table: object, field_offset: int, value: int) -> bytes:
    """Overwrite a uint32/int32 scalar field of a flatbuffer table in ``model``."""
    o = table._tab.Offset(field_offset)
    assert o, "field must be present to patch it"
    pos = table._tab.Pos + o
    return model[:pos] + struct.pack("<i", value) + model[pos + 4:]


def _patch_vector_item(model: bytes, table: object, field_offset: int, i: int,
                       value: int) -> bytes:
    o = table._tab.Offset(field_offset)
    pos = table._tab.Vector(o) + 4 * i
    return model[:pos] + struct.pack("<i", value) + model[pos + 4:]


def _fb(model: bytes) -> tflite.Model:
    return tflite.Model.GetRootAs(model, 0)


def test_truncated_file() -> None:
    model = _chain()
    with pytest.raises(ModelError, match="truncated|corrupt"):
        _open(model[: len(model) // 2])


def test_corrupt_flatbuffer_with_valid_identifier() -> None:
    model = bytearray(_chain())
    rng = np.random.default_rng(0)
    model[8:200] = rng.integers(0, 256, 192, dtype=np.uint8).tobytes()
    with pytest.raises(ModelError):
        _open(bytes(model))


@pytest.mark.parametrize("content", [b"", b"hello world, not a model",
                                     b"PK\x03\x04" + bytes(100), b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_not_a_tflite_file(content: bytes) -> None:
    with pytest.raises(ModelError, match="too short|not a TFLite model"):
        _open(content)


def test_missing_file_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="cannot read model file"):
        edgeplex.Interpreter(model_path=tmp_path / "absent.tflite")


def test_operator_input_index_out_of_range() -> None:
    model = _chain()
    op = _fb(model).Subgraphs(0).Operators(1)
    bad = _patch_vector_item(model, op, 6, 0, 999)      # Operator.inputs is field 1
    with pytest.raises(ModelError, match=r"op 1 \(MUL v1\): input 0 refers to tensor 999"):
        _open(bad)


def test_tensor_buffer_index_out_of_range() -> None:
    model = _chain()
    tensor = _fb(model).Subgraphs(0).Tensors(1)           # the constant "c"
    bad = _patch_u32(model, tensor, 8, 77)                 # Tensor.buffer is field 2
    with pytest.raises(ModelError, match=r"tensor 1 'c': buffer index 77 is out of range"):
        _open(bad)


def test_buffer_shorter_than_its_tensor() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (4,))
    c = g.constant("short", np.ones(2, np.float32), shape=(4,))
    g.output(g.op("ADD", [x, c], outputs=[g.tensor("y", (4,))]))
    with pytest.raises(ModelError, match=r"'short': buffer \d+ holds 8 bytes but shape \[4\] "
                                         r"of FLOAT32 needs 16"):
        _open(mb.build())


def test_negative_dimension() -> None:
    model = _chain()
    tensor = _fb(model).Subgraphs(0).Tensors(0)
    bad = _patch_vector_item(model, tensor, 4, 1, -5)      # Tensor.shape is field 0
    with pytest.raises(ModelError, match=r"tensor 0 'x': shape \[2, -5\] has a negative"):
        _open(bad)


def test_absurd_dimension_is_refused_before_allocating() -> None:
    model = _chain()
    tensor = _fb(model).Subgraphs(0).Tensors(0)
    bad = _patch_vector_item(model, tensor, 4, 0, 2**30)
    with pytest.raises(ModelError, match="over the memory limit"):
        _open(bad)


def test_memory_limit_is_configurable() -> None:
    model = _chain()
    it = edgeplex.Interpreter(model_content=model, memory_limit=16)
    with pytest.raises(ModelError, match="memory limit of 16"):
        it.allocate_tensors()
    edgeplex.Interpreter(model_content=model, memory_limit=1 << 20).allocate_tensors()


def _rewrite(model: bytes, **subgraph_changes: object) -> bytes:
    """Write a variant of ``model`` without the reader's validation in the way."""
    ir = edgeplex.read_model(model)
    sg = replace(ir.main, **subgraph_changes)
    return edgeplex.write_model(replace(ir, subgraphs=(sg,)))


def test_tensor_read_before_it_is_written() -> None:
    model = _chain()
    ops = edgeplex.read_model(model).main.operators
    swapped = (replace(ops[1], index=0), replace(ops[0], index=1))
    with pytest.raises(ModelError, match=r"op 0 \(MUL v1\) reads tensor 2 'add_0' before "
                                         r"op 1 \(ADD v1\) writes it"):
        _open(_rewrite(model, operators=swapped))


def test_tensor_nobody_writes() -> None:
    model = _chain()
    ir = edgeplex.read_model(model)
    orphan = replace(ir.main.tensors[2], name="orphan")
    tensors = ir.main.tensors + (replace(orphan, index=4),)
    mul = replace(ir.main.operators[1], inputs=(4, 4))
    with pytest.raises(ModelError, match=r"reads tensor 4 'orphan', which no operator writes"):
        _open(_rewrite(model, tensors=tensors, operators=(ir.main.operators[0], mul)))


def test_operator_cycle() -> None:
    model = _chain()
    ir = edgeplex.read_model(model)
    add, mul = ir.main.operators
    # ADD now reads MUL's output and MUL reads ADD's: a cycle.
    cyclic = (replace(add, inputs=(0, 3)), mul)
    with pytest.raises(ModelError, match=r"operator cycle op 0 \(ADD v1\) -> op 1 \(MUL v1\) "
                                         r"-> op 0 \(ADD v1\)"):
        _open(_rewrite(model, operators=cyclic))


def test_tensor_written_twice() -> None:
    model = _chain()
    ir = edgeplex.read_model(model)
    add, mul = ir.main.operators
    with pytest.raises(ModelError, match="written by both op 0 and op 1"):
        _open(_rewrite(model, operators=(add, replace(mul, outputs=(2,)))))


def test_unknown_builtin_code() -> None:
    model = _chain()
    code = _fb(model).OperatorCodes(1)                     # MUL: builtin_code is stored
    bad = _patch_u32(model, code, 10, 9999)              # OperatorCode.builtin_code is field 3
    with pytest.raises(ModelError, match="builtin code 9999"):
        _open(bad)


def test_invalid_op_options_are_errors_naming_the_op() -> None:
    mb = ModelBuilder()
    g = mb.main
    x = g.input("x", (2, 3))
    g.output(g.op("ADD", [x, g.input("y", (4, 5))], outputs=[g.tensor("z", (2, 3))]))
    with pytest.raises(ModelError, match=r"op 0 \(ADD v1\): input shapes \[2, 3\], \[4, 5\] "
                                         "do not broadcast"):
        _open(mb.build())
