"""Where tasks run: the fan-out over dask.distributed (configured outside the DVC params) and a local pool of
worker processes. Scheduling only: no task's result depends on this module (the tests run the same tasks
serially, side by side, on local dask workers and on a dask cluster, and compare the bytes), so no stage lists it
as a dependency.

- ``DASK_SCHEDULER_ADDRESS`` (dask's own ``scheduler-address`` config key also works): run on that
  existing cluster, e.g. one started by dask-jobqueue on SLURM/PBS.
- otherwise an in-process local cluster of ``HRTEM_OOD_WORKERS`` (default: the number of CPU cores)
  single-threaded workers; ``HRTEM_OOD_WORKERS=1`` runs serially in this process.
  ``HRTEM_OOD_PROCESSES=1`` uses worker processes instead of threads.

Every task runs with glibc's malloc told to keep freed memory (``keep_freed_memory``), wherever it runs.

Results never depend on where tasks run: every task carries its own seed and results are
returned in submission order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any


def scheduler_address() -> str | None:
    addr = os.environ.get("DASK_SCHEDULER_ADDRESS")
    if addr:
        return addr
    try:
        import dask

        return dask.config.get("scheduler-address", None)
    except ImportError:  # pragma: no cover
        return None


def n_local_workers() -> int:
    raw = os.environ.get("HRTEM_OOD_WORKERS", "")
    if raw.strip():
        try:
            n = int(raw)
        except ValueError as exc:
            raise ValueError(f"HRTEM_OOD_WORKERS must be an integer, got {raw!r}") from exc
        if n < 1:
            raise ValueError(f"HRTEM_OOD_WORKERS must be >= 1, got {n}")
        return n
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


#: glibc's ``mallopt`` parameters (malloc.h) and the values ``keep_freed_memory`` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's ceiling for the mmap threshold on 64-bit
_TRIM_THRESHOLD_BYTES = 1 << 30
_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next allocation instead of handing it back to the kernel.

    A multislice allocates and frees arrays of a few MB thousands of times per scene. dask's nanny starts
    every worker process with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``),
    and setting that also switches off glibc's adaptive mmap threshold: each array over 128 kB is then
    mapped fresh from the kernel and zero-filled page by page (22 default scenes on 2 worker processes:
    49 M page faults and 90-112 s of system time, against 0.35 M and 5 s after this; docs/performance.md).
    Here arrays up to 32 MiB come from the heap and up to 1 GiB of freed heap stays with the process.
    Only where arrays live changes, never a value. Called before every task; it sets the process's malloc
    once (threads share the setting) and returns whether the settings hold: False, with nothing changed,
    where the C library is not glibc.
    """
    global _kept
    if _kept is None:
        try:
            mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
        except (OSError, AttributeError):  # no mallopt in this C library (macOS, Windows): nothing to set
            _kept = False
        else:  # musl's mallopt sets nothing and returns 0
            _kept = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
                         and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))
    return _kept


def _call_keeping_memory(func: Callable[[Any], Any], item: Any) -> Any:
    """``func(item)`` in a process whose malloc keeps freed memory (a worker's task)."""
    keep_freed_memory()
    return func(item)


def longest_first(n: int, costs: Sequence[float] | None) -> list[int]:
    """The order to start ``n`` tasks in: by decreasing ``costs`` (ties, and no costs: as given). Started longest
    first, unequal tasks on a few workers end closer together (a scaled-down copy of the label-count study's 12
    models on 2 workers: 1.10x faster than in grid order, ``benchmarks/speed_levers.py``)."""
    if costs is None:
        return list(range(n))
    if len(costs) != n:
        raise ValueError(f"{len(costs)} costs for {n} tasks")
    return sorted(range(n), key=lambda i: -costs[i])


def map_ordered(func: Callable[[Any], Any], items: Sequence[Any], desc: str,
                costs: Sequence[float] | None = None) -> list[Any]:
    """``[func(x) for x in items]`` with a progress bar, on dask when worthwhile, started in
    :func:`longest_first` order."""
    from tqdm import tqdm

    keep_freed_memory()
    addr = scheduler_address()
    workers = n_local_workers()
    if not addr and (workers <= 1 or len(items) <= 1):
        return [func(x) for x in tqdm(items, desc=desc, unit="task", mininterval=1.0)]
    order = longest_first(len(items), costs)

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if addr:
        client = Client(addr)
    else:
        processes = os.environ.get("HRTEM_OOD_PROCESSES", "0") == "1"
        cluster = LocalCluster(n_workers=min(workers, len(items)), threads_per_worker=1, processes=processes,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    try:
        # one priority per task, highest first: dask starts the longest first
        futures = [client.submit(functools.partial(_call_keeping_memory, func), items[i], pure=False,
                                 priority=len(order) - rank) for rank, i in enumerate(order)]
        index = {f.key: i for f, i in zip(futures, order, strict=True)}
        results: list[Any] = [None] * len(items)
        with tqdm(total=len(items), desc=desc, unit="task", mininterval=1.0) as bar:
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                bar.update()
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _exit_with_parent(parent_pid: int) -> None:
    """Called first in each local worker (``_worker``): exit as soon as the stage process that spawned it
    is gone (stopped with SIGTERM or SIGKILL, say), so that no worker trains on as an orphan."""
    import threading
    import time

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(conn, parent_pid: int, fn) -> None:
    """A local worker: run each job it is sent, send back ``(True, result)`` or ``(False,
    exception)``, until it is sent None; exit if the stage process dies."""
    _exit_with_parent(parent_pid)
    while (job := conn.recv()) is not None:
        try:
            conn.send((True, fn(job)))
        except Exception as exc:  # raised again in the stage process
            conn.send((False, exc))


def run_side_by_side(fn: Callable[[Any], Any], jobs: Sequence[Any], n: int,
                     costs: Sequence[float] | None = None) -> list[Any]:
    """``[fn(job) for job in jobs]``: in this process when ``n <= 1``, else on ``n`` spawned worker processes,
    each taking the next job when it is free, in :func:`longest_first` order (each pays the start-up once; two
    1-thread models side by side train faster than one 2-thread model after another on 2 cores:
    benchmarks/training_speed.py). Results come back in the order of ``jobs``.

    The workers exit when the stage process dies, and a worker that dies (killed for memory, say) fails
    the stage at once. (concurrent.futures' pool could miss a dead worker and wait for ever: it watches
    the workers it had when it last woke, and spawns them one per job.)"""
    if n <= 1:
        return [fn(job) for job in jobs]
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(n):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(there, os.getpid(), fn))
        proc.start()
        there.close()  # so that the worker's death reads as end-of-file here
        workers.append((proc, here))
    results, todo, busy = [None] * len(jobs), [(i, jobs[i]) for i in longest_first(len(jobs), costs)], {}
    try:
        idle = list(workers)
        while todo or busy:
            while todo and idle:
                proc, conn = idle.pop()
                i, job = todo.pop(0)
                conn.send(job)
                busy[conn] = (proc, i)
            for conn in wait(list(busy)):
                proc, i = busy.pop(conn)
                try:
                    ok, value = conn.recv()
                except EOFError:
                    proc.join(5)
                    raise RuntimeError(f"a worker (pid {proc.pid}) died (exit code {proc.exitcode}) while "
                                       f"running job {i + 1} of {len(jobs)}; out of memory?") from None
                if not ok:
                    raise value
                results[i] = value
                idle.append((proc, conn))
        for _, conn in workers:
            conn.send(None)
        for proc, _ in workers:
            proc.join()
        return results
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()
                proc.join()
