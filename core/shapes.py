"""Shape inference for models under construction (used by the builder)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from .ir import Model
from .plan import PlanRuntime, SubgraphPlan


def infer_shapes(model: Model, subgraphs: Iterable[int], resolver: Any = None) -> Model:
    """``model`` with the tensor shapes of ``subgraphs`` set by running every
    kernel's prepare half on the subgraph's declared input shapes. Outputs
    whose shape depends on data keep the shape they were declared with."""
    if resolver is None:
        from edgeplex.kernels import default_resolver
        resolver = default_resolver()
    new = list(model.subgraphs)
    for index in sorted(set(subgraphs)):
        current = replace(model, subgraphs=tuple(new))
        plan = SubgraphPlan(current, index, resolver, PlanRuntime(current, resolver),
                            allocate=False)
        sg = new[index]
        tensors = tuple(t if plan.shapes[t.index] is None or t.index in plan.dynamic
                        else replace(t, shape=tuple(plan.shapes[t.index])) for t in sg.tensors)
        new[index] = replace(sg, tensors=tensors)
    return replace(model, subgraphs=tuple(new))
