"""core.parallel: kernels splitting one op across threads during invoke."""
from __future__ import annotations

import threading
import time

import pytest

from edgeplex.core import parallel


def record() -> tuple[list[tuple[int, int, str]], parallel.Task]:
    """A task that records (i, n, thread name) of each part it runs."""
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def task(i: int, n: int) -> None:
        with lock:
            seen.append((i, n, threading.current_thread().name))
    return seen, task


def test_outside_a_budget_the_task_runs_whole_on_the_caller() -> None:
    seen, task = record()
    parallel.parallel(task, 4)
    assert seen == [(0, 1, threading.current_thread().name)]


def test_every_part_runs_once_on_at_most_budget_threads() -> None:
    seen, task = record()

    def slow(i: int, n: int) -> None:
        time.sleep(0.005)         # releases the GIL: the worker surely takes parts
        task(i, n)
    with parallel.thread_budget(2):
        parallel.parallel(slow, 8)
    assert sorted(i for i, _, _ in seen) == list(range(8))
    assert {n for _, n, _ in seen} == {8}
    assert {name for _, _, name in seen} == {threading.current_thread().name,
                                             "edgeplex-worker"}


def test_budget_is_restored_and_per_thread() -> None:
    with parallel.thread_budget(3):
        assert parallel.current_budget() == 3
        other: list[int] = []
        t = threading.Thread(target=lambda: other.append(parallel.current_budget()))
        t.start()
        t.join()
        assert other == [1]
    assert parallel.current_budget() == 1
    with parallel.thread_budget(None):
        assert parallel.current_budget() == parallel.available_threads()


def test_nested_sections_run_serially() -> None:
    inner: list[tuple[int, int]] = []

    def outer(i: int, n: int) -> None:
        parallel.parallel(lambda j, m: inner.append((j, m)), 2)
    with parallel.thread_budget(2):
        parallel.parallel(outer, 2)
    assert inner == [(0, 1), (0, 1)]


@pytest.mark.parametrize("failing", [0, 1])
def test_an_exception_in_any_part_reaches_the_caller(failing: int) -> None:
    def task(i: int, n: int) -> None:
        if i == failing:
            raise ValueError(f"part {i}")
    with parallel.thread_budget(2), pytest.raises(ValueError, match=f"part {failing}"):
        parallel.parallel(task, 2)
    seen, ok = record()
    with parallel.thread_budget(2):       # the pool still works afterwards
        parallel.parallel(ok, 2)
    assert len(seen) == 2


def test_span_covers_the_range_in_order() -> None:
    for size in (0, 1, 5, 17):
        for n in (1, 2, 3, 8):
            parts = [parallel.span(size, i, n) for i in range(n)]
            assert [x for s in parts for x in range(size)[s]] == list(range(size))
