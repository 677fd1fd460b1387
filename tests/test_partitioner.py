"""The partitioner on synthetic graphs: structure first (partitions, transfers,
decisions), then a property test over random graphs and claims."""
from __future__ import annotations

from typing import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeplex.core.errors import ConfigError
from edgeplex.partitioner import (HOST, DelegateSpec, Graph, Node, NoDelegateError,
                                  PartitionerOptions, Pin, Placement, Verdict, place)

ACC = DelegateSpec("acc", "dev")          # an accelerator with its own memory
NPU = DelegateSpec("npu", "dev")          # another delegate sharing that memory
HOSTD = DelegateSpec("hostd", HOST)       # a delegate working in host memory
CPU = DelegateSpec("cpu", HOST, is_fallback=True)


def dag(n: int, edges: Sequence[tuple[int, int]], nbytes: int = 64,
        flops: Mapping[int, float] | None = None) -> Graph:
    """Node i writes tensor 100+i; an edge (u, v) makes v read u's tensor.

    Nodes without predecessors read the graph input tensor 0; nodes without
    successors are graph outputs.
    """
    preds: dict[int, list[int]] = {i: [] for i in range(n)}
    for u, v in edges:
        assert u < v, "edges go forward in model order"
        preds[v].append(u)
    has_succ = {u for u, _ in edges}
    nodes = tuple(Node(i, f"OP{i}", tuple(100 + p for p in preds[i]) or (0,), (100 + i,),
                       (flops or {}).get(i, 1000.0)) for i in range(n))
    sizes = {0: nbytes, **{100 + i: nbytes for i in range(n)}}
    return Graph(nodes, sizes, {t: f"t{t}" for t in sizes}, (0,),
                 tuple(100 + i for i in range(n) if i not in has_succ))


def claims(spec: Mapping[int, str], order: Sequence[str] = ("acc", "cpu")
           ) -> dict[int, list[Verdict]]:
    """Verdicts from a compact spec: node -> letters of the delegates that claim it
    (a=acc, n=npu, h=hostd, c=cpu)."""
    names = {"a": "acc", "n": "npu", "h": "hostd", "c": "cpu"}
    table = {}
    for node, letters in spec.items():
        yes = {names[c] for c in letters}
        table[node] = [Verdict(d, d in yes, "" if d in yes else f"{d} says no")
                       for d in order]
    return table


def groups(p: Placement) -> list[tuple[str, tuple[int, ...]]]:
    """(delegate, nodes) per partition, in execution order."""
    return [(q.delegate, q.nodes) for q in p.partitions]


# -- structure ----------------------------------------------------------------------
def test_chain_claimed_by_the_accelerator_is_one_partition() -> None:
    g = dag(4, [(0, 1), (1, 2), (2, 3)])
    p = place(g, [ACC, CPU], claims({i: "ac" for i in range(4)}))
    assert groups(p) == [("acc", (0, 1, 2, 3))]
    assert [(t.tensor, t.src, t.dst, t.before) for t in p.transfers] == [
        (0, HOST, "dev", 0), (103, "dev", HOST, 1)]


def test_diamond_with_a_cpu_arm_cuts_into_three() -> None:
    """0 -> {1, 2} -> 3 with node 1 only on the CPU: {0, 2} | {1} | {3}."""
    g = dag(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
    p = place(g, [ACC, CPU], claims({0: "ac", 1: "c", 2: "ac", 3: "ac"}))
    assert groups(p) == [("acc", (0, 2)), ("cpu", (1,)), ("acc", (3,))]
    moved = {(g.name_of(t.tensor), t.dst) for t in p.transfers}
    assert moved == {("t0", "dev"), ("t100", HOST), ("t101", "dev"), ("t103", HOST)}


def test_naive_merge_would_create_a_cycle() -> None:
    """acc 0 -> cpu 1 -> acc 2 and 0 -> 2: joining 0 and 2 would leave and re-enter."""
    g = dag(3, [(0, 1), (1, 2), (0, 2)])
    p = place(g, [ACC, CPU], claims({0: "ac", 1: "c", 2: "ac"}))
    assert groups(p) == [("acc", (0,)), ("cpu", (1,)), ("acc", (2,))]


def test_long_skip_connection() -> None:
    """0 -> 1 -> 2 -> 3 -> 4 and 0 -> 4; node 2 on the CPU splits the chain once."""
    g = dag(5, [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)])
    p = place(g, [ACC, CPU], claims({0: "ac", 1: "ac", 2: "c", 3: "ac", 4: "ac"}))
    assert groups(p) == [("acc", (0, 1)), ("cpu", (2,)), ("acc", (3, 4))]
    to_dev = [t for t in p.transfers if t.dst == "dev"]
    assert [(t.tensor, t.before) for t in to_dev] == [(0, 0), (102, 2)]   # t100 never left


def test_alternating_delegates_need_one_transfer_per_boundary() -> None:
    g = dag(6, [(i, i + 1) for i in range(5)])
    p = place(g, [ACC, CPU], claims({i: "ac" if i % 2 == 0 else "c" for i in range(6)}))
    assert [d for d, _ in groups(p)] == ["acc", "cpu"] * 3
    assert len(p.transfers) == 6          # the input in, then one per boundary (5)


def test_independent_groups_of_one_delegate_merge() -> None:
    """acc 0 reads the input; cpu 1 -> acc 2: the two acc nodes share a partition."""
    g = dag(3, [(1, 2)])
    p = place(g, [ACC, CPU], claims({0: "ac", 1: "c", 2: "ac"}))
    assert groups(p) == [("cpu", (1,)), ("acc", (0, 2))]


def test_same_domain_partitions_pass_values_without_the_host() -> None:
    """acc and npu share memory "dev": no transfer between them."""
    g = dag(3, [(0, 1), (1, 2)])
    p = place(g, [ACC, NPU, CPU], claims({0: "ac", 1: "nc", 2: "ac"}, ("acc", "npu", "cpu")))
    assert [d for d, _ in groups(p)] == ["acc", "npu", "acc"]
    assert [(t.tensor, t.src, t.dst) for t in p.transfers] == [(0, HOST, "dev"),
                                                              (102, "dev", HOST)]


def test_a_tensor_moves_to_a_domain_once() -> None:
    """The input feeds two accelerator partitions: it is moved once, before the first."""
    g = dag(3, [(0, 1), (1, 2)])
    g = Graph(tuple(Node(n.index, n.op, n.inputs + (0,) if n.index == 2 else n.inputs,
                         n.outputs, n.flops) for n in g.nodes), g.tensor_bytes,
              g.tensor_names, g.inputs, g.outputs)
    p = place(g, [ACC, CPU], claims({0: "ac", 1: "c", 2: "ac"}))
    assert [t.before for t in p.transfers if t.tensor == 0] == [0]


def test_host_delegate_needs_no_transfers() -> None:
    g = dag(3, [(0, 1), (1, 2)])
    p = place(g, [HOSTD, CPU], claims({0: "hc", 1: "c", 2: "hc"}, ("hostd", "cpu")))
    assert len(p.partitions) == 3 and p.transfers == ()


def test_nobody_claims_a_node() -> None:
    g = dag(2, [(0, 1)])
    with pytest.raises(NoDelegateError, match=r"op 1 \(OP1\): acc: acc says no; cpu: cpu says no"):
        place(g, [ACC, CPU], claims({0: "ac", 1: ""}))


# -- filters and rules --------------------------------------------------------------------
def test_min_nodes_per_partition_sends_small_partitions_to_the_next_claimant() -> None:
    g = dag(5, [(i, i + 1) for i in range(4)])
    spec = {0: "ac", 1: "ac", 2: "c", 3: "ac", 4: "c"}
    p = place(g, [ACC, CPU], claims(spec), PartitionerOptions(min_nodes_per_partition=2))
    assert groups(p) == [("acc", (0, 1)), ("cpu", (2, 3, 4))]
    v = next(v for v in p.verdicts[3] if v.delegate == "acc")
    assert v.source == "min_nodes" and "min_nodes_per_partition = 2" in v.reason
    assert p.decided_by[3].startswith("min_nodes (acc)")


def test_max_partitions_keeps_the_largest_by_work() -> None:
    g = dag(5, [(i, i + 1) for i in range(4)], flops={0: 10.0, 2: 1e6, 4: 50.0})
    spec = {0: "ac", 1: "c", 2: "ac", 3: "c", 4: "ac"}
    p = place(g, [ACC, CPU], claims(spec), PartitionerOptions(max_partitions=1))
    assert [q.nodes for q in p.partitions if q.delegate == "acc"] == [(2,)]
    assert p.verdicts[0][0].source == "max_partitions"


def test_pins_override_priority_and_are_reported() -> None:
    g = dag(3, [(0, 1), (1, 2)])
    pins = {1: Pin("cpu", "pin.cpu = 't101'")}
    p = place(g, [ACC, CPU], claims({i: "ac" for i in range(3)}), PartitionerOptions(pins=pins))
    assert p.assignment == {0: "acc", 1: "cpu", 2: "acc"}
    assert p.decided_by[1] == "pin rule pin.cpu = 't101'"


def test_pinned_nodes_survive_min_nodes() -> None:
    g = dag(3, [(0, 1), (1, 2)])
    pins = {1: Pin("acc", "pin.acc = 'node:1'")}
    p = place(g, [ACC, CPU], claims({0: "c", 1: "ac", 2: "c"}),
              PartitionerOptions(min_nodes_per_partition=3, pins=pins))
    assert p.assignment[1] == "acc"


def test_pin_to_a_delegate_that_refuses_is_a_config_error() -> None:
    g = dag(2, [(0, 1)])
    with pytest.raises(ConfigError, match=r"pin.acc = 'node:1'.*acc does not take op 1.*says no"):
        place(g, [ACC, CPU], claims({0: "ac", 1: "c"}),
              PartitionerOptions(pins={1: Pin("acc", "pin.acc = 'node:1'")}))


def test_a_rule_that_decided_is_named() -> None:
    g = dag(2, [(0, 1)])
    table = claims({0: "ac", 1: "c"})
    table[1][0] = Verdict("acc", False, "excluded by rule exclude.acc = 'OP1'", "rule")
    p = place(g, [ACC, CPU], table)
    assert p.decided_by[1] == "rule (acc): excluded by rule exclude.acc = 'OP1'"
    assert p.decided_by[0] == "priority"


def test_unknown_policy() -> None:
    with pytest.raises(ConfigError, match="policy 'fastest'"):
        place(dag(1, []), [CPU], claims({0: "c"}, ("cpu",)), PartitionerOptions("fastest"))


# -- cost policy --------------------------------------------------------------------------
def test_cost_keeps_a_small_island_on_the_cpu() -> None:
    """Moving node 1 saves 1 us of compute but costs two 1 MB transfers: it stays."""
    g = dag(3, [(0, 1), (1, 2)], nbytes=1 << 20, flops={0: 1e6, 1: 1e4, 2: 1e6})
    spec = {0: "c", 1: "ac", 2: "c"}
    estimates = {(1, "acc"): 1e-6}
    priority = place(g, [ACC, CPU], claims(spec))
    cost = place(g, [ACC, CPU], claims(spec), PartitionerOptions("cost", estimates=estimates))
    assert priority.assignment[1] == "acc"
    assert cost.assignment[1] == "cpu" and cost.decided_by[1] == "cost"
    assert cost.transfers == () and cost.estimated_seconds < priority.estimated_seconds


def test_cost_moves_heavy_work_despite_transfers() -> None:
    """The same island doing 1 GFLOP: the accelerator's 1 ms beats 200 ms on the CPU."""
    g = dag(3, [(0, 1), (1, 2)], nbytes=1 << 20, flops={0: 1e6, 1: 1e9, 2: 1e6})
    p = place(g, [ACC, CPU], claims({0: "c", 1: "ac", 2: "c"}),
              PartitionerOptions("cost", estimates={(1, "acc"): 1e-3}))
    assert p.assignment[1] == "acc" and len(p.transfers) == 2


def test_cost_moves_whole_islands() -> None:
    """Two cheap accelerator nodes in a row are judged together, not one by one."""
    g = dag(4, [(0, 1), (1, 2), (2, 3)], nbytes=1 << 20, flops={1: 1e8, 2: 1e8})
    est = {(1, "acc"): 1e-5, (2, "acc"): 1e-5}
    p = place(g, [ACC, CPU], claims({0: "c", 1: "ac", 2: "ac", 3: "c"}),
              PartitionerOptions("cost", estimates=est))
    assert p.assignment[1] == p.assignment[2] == "acc"


# -- properties ---------------------------------------------------------------------------
@st.composite
def random_case(draw: st.DrawFn) -> tuple[Graph, dict[int, list[Verdict]], PartitionerOptions]:
    n = draw(st.integers(1, 12))
    edges = [(u, v) for v in range(n) for u in range(v) if draw(st.booleans())
             and draw(st.integers(0, 2)) == 0]
    g = dag(n, edges)
    letters = st.sampled_from(["c", "ac", "nc", "hc", "anc", "ahc"])
    spec = {i: draw(letters) for i in range(n)}
    options = PartitionerOptions(draw(st.sampled_from(["priority", "cost"])),
                                 draw(st.integers(1, 3)), draw(st.integers(0, 2)))
    return g, claims(spec, ("acc", "npu", "hostd", "cpu")), options


@given(random_case())
def test_every_plan_is_a_valid_acyclic_cover(case: tuple) -> None:
    g, table, options = case
    p = place(g, [ACC, NPU, HOSTD, CPU], table, options)
    where = {n: q.id for q in p.partitions for n in q.nodes}
    assert sorted(n for q in p.partitions for n in q.nodes) == list(range(len(g.nodes)))
    for q in p.partitions:                           # each node once, on a claimant
        assert all(p.assignment[n] == q.delegate for n in q.nodes)
        assert all(any(v.delegate == q.delegate and v.supported for v in p.verdicts[n])
                   for n in q.nodes)
    order = [n for q in p.partitions for n in q.nodes]
    position = {n: i for i, n in enumerate(order)}
    for v, preds in enumerate(g.predecessors()):     # executing in this order is valid
        for u in preds:
            assert position[u] < position[v] and where[u] <= where[v]
    assert _maximal(g, p)
    _check_transfers(g, p)


def _maximal(g: Graph, p: Placement) -> bool:
    """No two partitions of one delegate could merge without a cycle."""
    succ: dict[int, set[int]] = {q.id: set() for q in p.partitions}
    where = {n: q.id for q in p.partitions for n in q.nodes}
    for v, preds in enumerate(g.predecessors()):
        succ.update({where[u]: succ[where[u]] | {where[v]} for u in preds if where[u] != where[v]})

    def reaches(a: int, b: int, skip_direct: bool) -> bool:
        stack = [s for s in succ[a] if not (skip_direct and s == b)]
        seen = set(stack)
        while stack:
            x = stack.pop()
            if x == b:
                return True
            stack += [s for s in succ[x] if s not in seen]
            seen.update(succ[x])
        return False
    for a in p.partitions:
        for b in p.partitions:
            if a.id < b.id and a.delegate == b.delegate and not (
                    reaches(a.id, b.id, True) or reaches(b.id, a.id, True)):
                return False
    return True


def _check_transfers(g: Graph, p: Placement) -> None:
    home = {t: q.domain for q in p.partitions for n in q.nodes for t in g.nodes[n].outputs}
    moves = [(t.tensor, t.dst) for t in p.transfers]
    assert len(moves) == len(set(moves)), "a tensor moved to one domain twice"
    for q in p.partitions:
        for t in q.inputs:
            if home.get(t, HOST) != q.domain:
                tr = next(x for x in p.transfers if (x.tensor, x.dst) == (t, q.domain))
                assert tr.before <= q.id
    needed = {(t, q.domain) for q in p.partitions for t in q.inputs
              if home.get(t, HOST) != q.domain}
    needed |= {(t, HOST) for t in g.outputs if home.get(t, HOST) != HOST}
    assert set(moves) == needed, "transfers are not the minimum"
