"""Control flow: WHILE, IF and CALL_ONCE run other subgraphs of the model.

Each op gets a :class:`~edgeplex.core.plan.SubgraphRunner` per called
subgraph from ``ctx.runtime``; a runner keeps one prepared plan per set of
input shapes and returns *views* of that plan's output buffers, so every
value that must outlive the next call of the same subgraph is copied out.

Semantics follow LiteRT's ``while.cc``, ``if.cc`` and ``call_once.cc``:

* WHILE: ``cond`` and ``body`` take the N loop values; ``cond`` yields one
  bool. When the body keeps every shape, the outputs are static and the loop
  runs in the op's own output buffers; otherwise (a body output of another
  shape, or a data-dependent one) the outputs are data-dependent.
* IF: input 0 is a one-element bool, the rest go to the chosen branch. The
  outputs are static only when both branches give the same static shapes.
* CALL_ONCE: runs its init subgraph on the first invoke of the interpreter
  and never again (``reset_all_variables`` does not re-arm it in LiteRT).

Variable tensors inside a called subgraph (say an RNN state in a WHILE body)
start from zero at each execution of the WHILE/IF and carry across the
loop's iterations only: that is what LiteRT does.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from edgeplex.core.errors import InterpreterError
from edgeplex.core.ir import Subgraph
from edgeplex.core.kernel_api import OpContext, Prepared, TensorSpec

from .registry import register

Shape = tuple[int, ...]
Runner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]

#: Control flow ops move tensors of any type.
_ANY = frozenset({"ANY"})


def _any_type(ctx: OpContext) -> str:
    return "ANY"


# -- shared checks ---------------------------------------------------------------
def _subgraph(ctx: OpContext, index: int, role: str) -> Subgraph:
    """Subgraph ``index`` of the model, checked to exist and not be the caller."""
    n = len(ctx.model.subgraphs)
    if not isinstance(index, int) or not 0 <= index < n:
        raise ctx.invalid(f"{role} subgraph index {index} is out of range (the model has "
                          f"{n} subgraphs)")
    if index == ctx.subgraph.index:
        raise ctx.invalid(f"{role} subgraph {index} is the subgraph holding this op "
                          "(recursion is not supported)")
    return ctx.model.subgraphs[index]


def _runtime(ctx: OpContext) -> Any:
    if ctx.runtime is None:
        ctx.fail("control flow needs an interpreter runtime to run other subgraphs")
    return ctx.runtime


def _check_arity(ctx: OpContext, sg: Subgraph, role: str, inputs: int, outputs: int) -> None:
    if len(sg.inputs) != inputs or len(sg.outputs) != outputs:
        raise ctx.invalid(f"{role} subgraph {sg.index} has {len(sg.inputs)} inputs and "
                          f"{len(sg.outputs)} outputs; this op needs {inputs} inputs and "
                          f"{outputs} outputs")


def _check_input_types(ctx: OpContext, sg: Subgraph, role: str,
                       specs: Sequence[TensorSpec]) -> None:
    for i, (t, spec) in enumerate(zip(sg.inputs, specs)):
        want = sg.tensors[t]
        if want.type_name != spec.type_name:
            raise ctx.invalid(f"{role} subgraph {sg.index} input {i} {want.name!r} is "
                              f"{want.type_name} but the op passes {spec.type_name}")


def _check_output_types(ctx: OpContext, sg: Subgraph, role: str) -> None:
    for i, (t, out) in enumerate(zip(sg.outputs, ctx.outputs)):
        got = sg.tensors[t]
        if got.type_name != out.type_name:
            raise ctx.invalid(f"{role} subgraph {sg.index} output {i} {got.name!r} is "
                              f"{got.type_name} but op output {i} is {out.type_name}")


def _inputs(ctx: OpContext, first: int = 0) -> list[TensorSpec]:
    return [ctx.input(i) for i in range(first, len(ctx.inputs))]


class _Call:
    """Runs a subgraph on arrays like its SubgraphRunner, cheaper per call: plans
    are looked up by the arrays' shapes in a local table and only the inputs the
    subgraph reads are copied in. Returns views of the plan's outputs."""

    def __init__(self, runner: Any) -> None:
        sg = runner.subgraph
        self.runner, self.outputs = runner, sg.outputs
        self.inputs = [(t, _read(sg, t)) for t in sg.inputs]
        self.plans: dict[tuple, Any] = {}

    def reset_variables(self) -> None:
        """As SubgraphRunner.reset_variables."""
        self.runner.reset_variables()

    def __call__(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        key = tuple(a.shape for a in arrays)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self.runner.plan(key)
        values = plan.values
        for (t, read), a in zip(self.inputs, arrays):
            if read:
                np.copyto(values[t], a, casting="unsafe")
        plan.run()
        return [values[t] for t in self.outputs]


def _copies(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.array(a, copy=True) for a in arrays]


def _fresh_variables(*runners: Any) -> None:
    """Variable tensors of the called subgraphs start from their initial value at
    every execution of the op, as in LiteRT (they carry across WHILE iterations)."""
    for runner in runners:
        runner.reset_variables()


# -- WHILE ---------------------------------------------------------------------------
@register("WHILE", versions=(1, 1), types=_ANY, type_key=_any_type)
def prepare_while(ctx: OpContext) -> Prepared:
    """WHILE: repeat ``body`` on the loop values while ``cond`` holds."""
    opts, rt = ctx.options, _runtime(ctx)
    specs = _inputs(ctx)
    n = len(specs)
    if len(ctx.outputs) != n:
        raise ctx.invalid(f"has {n} inputs but {len(ctx.outputs)} outputs; WHILE needs as "
                          "many outputs as inputs")
    if opts.cond_subgraph_index == opts.body_subgraph_index:
        raise ctx.invalid(f"cond and body are the same subgraph {opts.cond_subgraph_index}")
    cond_sg = _subgraph(ctx, opts.cond_subgraph_index, "cond")
    body_sg = _subgraph(ctx, opts.body_subgraph_index, "body")
    _check_arity(ctx, cond_sg, "cond", n, 1)
    _check_arity(ctx, body_sg, "body", n, n)
    _check_input_types(ctx, cond_sg, "cond", specs)
    _check_input_types(ctx, body_sg, "body", specs)
    _check_output_types(ctx, body_sg, "body")
    _check_loop_types(ctx, specs)
    cond = rt.subgraph_runner(cond_sg.index, specs)
    body = rt.subgraph_runner(body_sg.index, specs)
    shapes = [s.shape for s in specs]
    _check_cond_output(ctx, cond_sg, cond.output_shapes(shapes)[0])
    body_shapes = body.output_shapes(shapes)
    test = _cond_test(ctx, cond_sg)
    if body_shapes == shapes:
        return ctx.done(_static_loop(test, cond, body, shapes), *shapes)
    permuted = any(t in body_sg.inputs and t != body_sg.inputs[k]
                   for k, t in enumerate(body_sg.outputs))
    return ctx.done(_dynamic_loop(test, _Call(cond), _Call(body), permuted), *([None] * n))


def _check_loop_types(ctx: OpContext, specs: Sequence[TensorSpec]) -> None:
    for i, (spec, out) in enumerate(zip(specs, ctx.outputs)):
        if spec.type_name != out.type_name:
            raise ctx.invalid(f"input {i} is {spec.type_name} but output {i} is "
                              f"{out.type_name}; loop values keep their type")


def _check_cond_output(ctx: OpContext, sg: Subgraph, shape: Shape | None) -> None:
    t = sg.tensors[sg.outputs[0]]
    if t.type_name != "BOOL":
        raise ctx.invalid(f"cond subgraph {sg.index} output {t.name!r} is {t.type_name}; "
                          "it must be a single BOOL")
    if shape is not None and tuple(shape) not in ((), (1,)):
        raise ctx.invalid(f"cond subgraph {sg.index} output {t.name!r} has shape "
                          f"{list(shape)}; it must be a single BOOL (shape [] or [1])")


def _cond_test(ctx: OpContext, sg: Subgraph) -> Callable[[list[np.ndarray]], bool]:
    """A function reading the cond subgraph's result (checked when data-dependent)."""
    where = ctx.where()

    def test(result: list[np.ndarray]) -> bool:
        value = result[0]
        if value.dtype != np.bool_ or value.size != 1:
            raise InterpreterError(f"{where}: cond subgraph {sg.index} produced "
                                   f"{value.dtype} of shape {list(value.shape)}; it must be "
                                   "a single bool")
        return bool(value.reshape(-1)[0])
    return test


def _static_loop(test: Callable[[list[np.ndarray]], bool], cond: Any, body: Any,
                 shapes: list[Shape]) -> Callable[[Sequence[np.ndarray], Sequence[np.ndarray]],
                                                  None]:
    """Loop on the called subgraphs' own buffers: every shape stays the same.

    The cond and body plans for these shapes are bound once: an iteration
    copies into the cond only the values it reads, runs it, copies each body
    output that is not a pass-through of its own input straight into the body's
    input buffer, and runs the body. Body outputs that are other body inputs
    (permuted loop values) go through the op's outputs instead, so no value is
    overwritten before it is read.
    """
    cond_plan, body_plan = cond.plan(shapes), body.plan(shapes)
    c_sg, b_sg = cond_plan.sg, body_plan.sg
    c_vals, b_vals = cond_plan.values, body_plan.values
    c_ins = [(k, c_vals[t]) for k, t in enumerate(c_sg.inputs) if _read(c_sg, t)]
    b_ins = [b_vals[t] for t in b_sg.inputs]
    moving = [(k, t) for k, t in enumerate(b_sg.outputs) if t != b_sg.inputs[k]]
    permuted = any(t in b_sg.inputs for _, t in moving)
    c_out, b_sg_out = c_sg.outputs[0], b_sg.outputs

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        _fresh_variables(cond, body)
        for dst, x in zip(b_ins, ins):
            np.copyto(dst, x)
        while True:
            for k, dst in c_ins:
                np.copyto(dst, b_ins[k])
            cond_plan.run()
            if not test([c_vals[c_out]]):
                break
            body_plan.run()
            if permuted:
                for out, t in zip(outs, b_sg_out):
                    np.copyto(out, b_vals[t])
                for dst, out in zip(b_ins, outs):
                    np.copyto(dst, out)
            else:
                for k, t in moving:
                    np.copyto(b_ins[k], b_vals[t])
        for out, x in zip(outs, b_ins):
            np.copyto(out, x)
    return run


def _read(sg: Subgraph, t: int) -> bool:
    """Whether tensor ``t`` of ``sg`` is read by an op or is an output."""
    return t in sg.outputs or any(t in op.inputs for op in sg.operators)


def _dynamic_loop(test: Callable[[list[np.ndarray]], bool], cond: Runner, body: Runner,
                  permuted: bool
                  ) -> Callable[[Sequence[np.ndarray], Sequence[Any]], list[np.ndarray]]:
    """Loop where the body may change shapes, so outputs are data-dependent.

    The loop values are the body's output views, each consumed (copied into
    the cond's and the body's input buffers) before the body runs again, so
    they are copied only at the end, or every iteration when some body output
    is another body input (copying those views in order would clobber them).
    """
    def run(ins: Sequence[np.ndarray], outs: Sequence[Any]) -> list[np.ndarray]:
        _fresh_variables(cond, body)
        values = list(ins)
        while test(cond(values)):
            values = body(values)
            if permuted:
                values = _copies(values)
        return _copies(values)
    return run


# -- IF ------------------------------------------------------------------------------
@register("IF", versions=(1, 1), types=_ANY, type_key=_any_type)
def prepare_if(ctx: OpContext) -> Prepared:
    """IF: run the then or else subgraph on inputs 1.. depending on input 0."""
    opts, rt = ctx.options, _runtime(ctx)
    if not ctx.inputs:
        raise ctx.invalid("needs a condition input")
    cond = ctx.input(0)
    if cond.type_name != "BOOL" or cond.size != 1:
        raise ctx.invalid(f"condition {cond.name!r} is {cond.type_name} of shape "
                          f"{list(cond.shape)}; it must be a single BOOL")
    specs = _inputs(ctx, 1)
    branches = []
    for role, index in (("then", opts.then_subgraph_index), ("else", opts.else_subgraph_index)):
        sg = _subgraph(ctx, index, role)
        _check_arity(ctx, sg, role, len(specs), len(ctx.outputs))
        _check_input_types(ctx, sg, role, specs)
        _check_output_types(ctx, sg, role)
        branches.append(rt.subgraph_runner(index, specs))
    shapes = [s.shape for s in specs]
    then_shapes, else_shapes = (b.output_shapes(shapes) for b in branches)
    if then_shapes == else_shapes and None not in then_shapes:
        return ctx.done(_static_branch(*branches, shapes), *then_shapes)
    return ctx.done(_dynamic_branch(*(_Call(b) for b in branches)),
                    *([None] * len(ctx.outputs)))


def _static_branch(then: Any, other: Any, shapes: list[Shape]
                   ) -> Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], None]:
    """Both branches' plans for these shapes, bound once; a run copies in only
    the inputs the chosen branch reads."""
    bound = []
    for runner in (then, other):
        plan = runner.plan(shapes)
        ins = [(k, plan.values[t]) for k, t in enumerate(plan.sg.inputs) if _read(plan.sg, t)]
        bound.append((runner, plan, ins, plan.sg.outputs))

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        runner, plan, inputs, results = bound[0] if ins[0].reshape(-1)[0] else bound[1]
        _fresh_variables(runner)
        for k, dst in inputs:
            np.copyto(dst, ins[k + 1])
        plan.run()
        for out, t in zip(outs, results):
            np.copyto(out, plan.values[t])
    return run


def _dynamic_branch(then: Runner, other: Runner
                    ) -> Callable[[Sequence[np.ndarray], Sequence[Any]], list[np.ndarray]]:
    def run(ins: Sequence[np.ndarray], outs: Sequence[Any]) -> list[np.ndarray]:
        branch = then if ins[0].reshape(-1)[0] else other
        _fresh_variables(branch)
        return _copies(branch(ins[1:]))
    return run


# -- CALL_ONCE ---------------------------------------------------------------------------
@register("CALL_ONCE", versions=(1, 1), types=_ANY, type_key=_any_type)
def prepare_call_once(ctx: OpContext) -> Prepared:
    """CALL_ONCE: run the init subgraph on the interpreter's first invoke only."""
    rt = _runtime(ctx)
    if ctx.inputs or ctx.outputs:
        raise ctx.invalid(f"has {len(ctx.inputs)} inputs and {len(ctx.outputs)} outputs; "
                          "CALL_ONCE takes none")
    index = ctx.options.init_subgraph_index
    sg = _subgraph(ctx, index, "init")
    _check_arity(ctx, sg, "init", 0, 0)
    init = rt.subgraph_runner(index, [])
    init.output_shapes([])          # prepares the init subgraph now: errors surface here
    done_key = ("call_once", index)
    resources = rt.resources

    def run(ins: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        if not resources.get(done_key):
            init([])
            resources[done_key] = True
    return ctx.done(run)
