"""Load the converter-made fixtures and cut single operators out of them.

A converter-made model's ops carry real converter choices (per-channel
scales, bias types, op versions, intermediates); cutting one op out into its
own model lets a kernel be checked against LiteRT on exactly those tensors.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import edgeplex
from edgeplex.core.ir import OMITTED, Model, Subgraph

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> bytes:
    """The bytes of tests/fixtures/<name>."""
    return (FIXTURES / name).read_bytes()


def op_indices(model: bytes, op: str) -> list[int]:
    """Indices of the main subgraph's operators named ``op``."""
    return [o.index for o in edgeplex.read_model(model).main.operators if o.op == op]


def single_op_model(model: bytes, index: int) -> bytes:
    """A model holding only operator ``index`` of the main subgraph; its
    non-constant inputs become the model inputs, its outputs the outputs."""
    m = edgeplex.read_model(model)
    sg = m.main
    op = sg.operators[index]
    used = [t for t in (*op.inputs, *op.outputs, *op.intermediates) if t != OMITTED]
    remap = {old: new for new, old in enumerate(dict.fromkeys(used))}
    tensors = tuple(replace(sg.tensors[old], index=new) for old, new in remap.items())
    new_op = replace(op, index=0,
                     inputs=tuple(OMITTED if t == OMITTED else remap[t] for t in op.inputs),
                     outputs=tuple(remap[t] for t in op.outputs),
                     intermediates=tuple(remap[t] for t in op.intermediates))
    inputs = tuple(remap[t] for t in op.inputs
                   if t != OMITTED and sg.tensors[t].data is None and not sg.tensors[t].is_variable)
    new_sg = Subgraph(0, "main", tensors, (new_op,), inputs, new_op.outputs)
    return edgeplex.write_model(Model(subgraphs=(new_sg,), description="single op"))
