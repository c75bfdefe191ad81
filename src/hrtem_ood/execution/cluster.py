"""A real dask cluster on this machine: ``dask scheduler`` and N ``dask worker`` processes on 127.0.0.1, as
dask-jobqueue would start them on a cluster's nodes. For tests and benchmarks; no stage imports this (a
stage finds a cluster through ``DASK_SCHEDULER_ADDRESS``, hrtem_ood.execution.parallel)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def local_cluster(n_workers: int, threads_per_worker: int = 1, timeout_s: float = 120.0) -> Iterator[str]:
    """Start a scheduler and ``n_workers`` worker processes; yield the scheduler's address; stop them all."""
    from dask.distributed import Client

    bindir = Path(sys.executable).parent
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    with tempfile.TemporaryDirectory() as tmp:
        sched_file = Path(tmp) / "scheduler.json"
        procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(sched_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
        try:
            deadline = time.monotonic() + timeout_s
            while not (sched_file.exists() and sched_file.stat().st_size):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"dask scheduler did not start within {timeout_s} s")
                time.sleep(0.1)
            for _ in range(n_workers):
                procs.append(subprocess.Popen(
                    [str(bindir / "dask"), "worker", "--scheduler-file", str(sched_file), "--nthreads",
                     str(threads_per_worker), "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
            with Client(scheduler_file=str(sched_file), timeout=timeout_s) as client:
                client.wait_for_workers(n_workers, timeout=timeout_s)
                address = client.scheduler.address
            yield address
        finally:
            for p in procs[::-1]:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
