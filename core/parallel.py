"""Splitting one kernel's work across threads during ``invoke``.

numpy releases the GIL inside its loops (ufuncs, einsum, copies, matmul), so a
large op split into row blocks runs its blocks on several cores at once. The
interpreter sets the thread budget (its ``num_threads``) around each invoke
with :func:`thread_budget`; a kernel calls :func:`parallel` with a task
``task(i, n)`` that does part ``i`` of ``n``. The threads take parts one at a
time until none is left, so a thread that starts late (its core busy with
another process) just takes fewer: the section never waits much longer than
the whole work would take on the calling thread alone. Outside an invoke, on
a thread already inside a parallel section, or with a budget of 1, the task
runs whole on the calling thread (``task(0, 1)``); each part must compute its
elements exactly as the whole would.

Workers are plain threads blocked on a lock (waking one costs a few to a few
tens of microseconds), started on first use and shared by every interpreter
of the process; only one parallel section runs at a time.
"""
from __future__ import annotations

import _thread
import itertools
import os
import threading
from typing import Any, Callable, Iterator
from contextlib import contextmanager

Task = Callable[[int, int], Any]


class _Budget(threading.local):
    threads = 1


_budget = _Budget()


def available_threads() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextmanager
def thread_budget(n: int | None) -> Iterator[None]:
    """Let kernels on this thread use up to ``n`` threads (None: every available CPU)."""
    old = _budget.threads
    _budget.threads = max(1, available_threads() if n is None else n)
    try:
        yield
    finally:
        _budget.threads = old


def current_budget() -> int:
    """Threads a kernel running now may use."""
    return _budget.threads


class _Worker:
    """One thread running a task part each time it is started."""

    def __init__(self) -> None:
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._job: tuple[Task, Iterator[int], int] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._loop, name="edgeplex-worker", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            task, parts, n = self._job  # type: ignore[misc]
            try:
                _drain(task, parts, n)
            except BaseException as e:  # handed to the caller by join()
                self._error = e
            self._job = None
            self._done.release()

    def start(self, task: Task, parts: Iterator[int], n: int) -> None:
        """Run ``task(i, n)`` for each ``i`` this worker takes from ``parts``."""
        self._job = (task, parts, n)
        self._go.release()

    def join(self) -> BaseException | None:
        """Wait for the running part; returns the exception it raised, if any."""
        self._done.acquire()
        error, self._error = self._error, None
        return error


_workers: list[_Worker] = []
_section = _thread.allocate_lock()


def _drain(task: Task, parts: Iterator[int], n: int) -> None:
    for i in parts:
        if i >= n:
            return
        task(i, n)


def parallel(task: Task, parts: int) -> None:
    """Run ``task(i, parts)`` for every ``i < parts`` on up to budget threads, the
    caller included; with a budget of 1 (or ``parts`` 1) just ``task(0, 1)``."""
    threads = min(parts, _budget.threads)
    if threads <= 1 or not _section.acquire(False):
        task(0, 1)
        return
    budget, _budget.threads = _budget.threads, 1      # nested sections run serially
    try:
        while len(_workers) < threads - 1:
            _workers.append(_Worker())
        queue = itertools.count()      # next() is atomic under the GIL
        for w in _workers[:threads - 1]:
            w.start(task, queue, parts)
        error: BaseException | None = None
        try:
            _drain(task, queue, parts)
        except BaseException as e:
            error = e
            for _ in range(parts):     # let the workers stop early
                next(queue)
        for w in _workers[:threads - 1]:
            error = w.join() or error
        if error is not None:
            raise error
    finally:
        _budget.threads = budget
        _section.release()


def span(size: int, i: int, n: int) -> slice:
    """Part ``i`` of ``n`` near-equal contiguous parts of ``range(size)``."""
    return slice(size * i // n, size * (i + 1) // n)


def _after_fork() -> None:
    global _section
    _workers.clear()
    _section = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
