"""QUANTIZE and DEQUANTIZE (and float16 constants dequantized to float32)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeplex.core.kernel_api import OpContext, Prepared

from .registry import register


@register("DEQUANTIZE", versions=(1, 6), types={"FLOAT16"})
def prepare_dequantize_float16(ctx: OpContext) -> Prepared:
    """DEQUANTIZE of float16 (usually constant weights) to float32."""
    ctx.expect_counts(1)
    x = ctx.input(0)
    if ctx.outputs[0].type_name != "FLOAT32":
        raise ctx.invalid(f"float16 DEQUANTIZE must output FLOAT32, not "
                          f"{ctx.outputs[0].type_name}")

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        np.copyto(outs[0], ins[0], casting="unsafe")
    return ctx.done(run, x.shape)
