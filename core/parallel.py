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


class _Section:
    """One parallel call: parts handed out one at a time, completions counted."""

    def __init__(self, task: Task, parts: int) -> None:
        self.task, self.parts = task, parts
        self.queue = itertools.count()        # next() is atomic under the GIL
        self.completed = itertools.count(1)
        self.finished = _thread.allocate_lock()
        self.finished.acquire()
        self.error: BaseException | None = None

    def drain(self) -> bool:
        """Run parts until none is left; True if this thread completed the last one."""
        last = False
        for i in self.queue:
            if i >= self.parts:
                break
            try:
                self.task(i, self.parts)
            except BaseException as e:  # handed to the caller
                self.error = self.error or e
            last = next(self.completed) == self.parts
        return last


class _Worker:
    """A thread that joins whichever section is open when it wakes up.

    The caller never waits for a worker that has not started: if a worker's
    core is busy elsewhere, the caller takes every part itself and the late
    worker, when it runs, finds the section's parts all taken.
    """

    def __init__(self) -> None:
        self._wake = _thread.allocate_lock()
        self._wake.acquire()
        self.waking = False
        threading.Thread(target=self._loop, name="edgeplex-worker", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._wake.acquire()
            self.waking = False
            section = _open
            if section is not None and section.drain():
                section.finished.release()

    def wake(self) -> None:
        """Ask the worker to join the open section (once, until it wakes)."""
        if not self.waking:
            self.waking = True
            self._wake.release()


_workers: list[_Worker] = []
_section = _thread.allocate_lock()
_open: _Section | None = None


def parallel(task: Task, parts: int) -> None:
    """Run ``task(i, parts)`` for every ``i < parts`` on up to budget threads, the
    caller included; with a budget of 1 (or ``parts`` 1) just ``task(0, 1)``."""
    global _open
    threads = min(parts, _budget.threads)
    if threads <= 1 or not _section.acquire(False):
        task(0, 1)
        return
    budget, _budget.threads = _budget.threads, 1      # nested sections run serially
    try:
        while len(_workers) < threads - 1:
            _workers.append(_Worker())
        section = _open = _Section(task, parts)
        for w in _workers[:threads - 1]:
            w.wake()
        if not section.drain():
            section.finished.acquire()  # a worker is finishing the last part it took
        _open = None
        if section.error is not None:
            raise section.error
    finally:
        _budget.threads = budget
        _section.release()


def span(size: int, i: int, n: int) -> slice:
    """Part ``i`` of ``n`` near-equal contiguous parts of ``range(size)``."""
    return slice(size * i // n, size * (i + 1) // n)


def _after_fork() -> None:
    global _section, _open
    _workers.clear()
    _section, _open = _thread.allocate_lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
