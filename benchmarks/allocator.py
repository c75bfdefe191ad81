"""The multislice under glibc's malloc settings, side by side in one run.

Each configuration simulates the same default scenes one after another in a fresh process (the first
scene warms up and is not counted), and reports per scene: wall time, system time and minor page faults
(the kernel mapping and zero-filling memory), each as a ratio to glibc's defaults:

1. glibc's defaults (the stage's own process before ``keep_freed_memory``);
2. glibc's defaults, then ``hrtem_ood.execution.parallel.keep_freed_memory()`` (what every fanned-out task now
   runs with);
3. dask's nanny setting, ``MALLOC_TRIM_THRESHOLD_=65536``: what every dask worker process starts with;
4. the nanny setting, then ``keep_freed_memory()``.

Page faults and system time are counts of work, so they compare across runs; wall times on a shared
machine drift by tens of percent between minutes. Outputs are the same bytes in all four (checked here).

Usage: python benchmarks/allocator.py [params.yaml] [n_scenes]
"""

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import hashlib, json, resource, sys, time
sys.path.insert(0, {bench!r})
from simulation_cost import scene_tasks
from hrtem_ood.config.params import load_params, validate
from hrtem_ood.execution.parallel import keep_freed_memory
from hrtem_ood.physics.simulation import simulate_scene
if {keep}:
    assert keep_freed_memory()
tasks = scene_tasks(validate(load_params({params!r})), {n})
digest = hashlib.sha256()
simulate_scene(tasks[0])  # warm-up: abTEM's JIT and first allocations
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for task in tasks[1:]:
    digest.update(simulate_scene(task)["waves"].tobytes())
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
k = len(tasks) - 1
print(json.dumps({{"wall_s": (t1 - t0) / k, "sys_s": (r1.ru_stime - r0.ru_stime) / k,
                  "faults": (r1.ru_minflt - r0.ru_minflt) / k, "sha256": digest.hexdigest()}}))
"""

CONFIGS = [("glibc defaults", {}, False), ("glibc defaults + keep_freed_memory", {}, True),
           ("dask nanny (MALLOC_TRIM_THRESHOLD_=65536)", {"MALLOC_TRIM_THRESHOLD_": "65536"}, False),
           ("dask nanny + keep_freed_memory", {"MALLOC_TRIM_THRESHOLD_": "65536"}, True)]


def main():
    params = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    bench = str(Path(__file__).resolve().parent)
    rows = []
    for name, env, keep in CONFIGS:
        code = CHILD.format(bench=bench, keep=keep, params=params, n=n)
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True)
        rows.append((name, json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"multislice of {n - 1} default scenes after a warm-up scene, one process each, per scene:")
    base = rows[0][1]
    for name, r in rows:
        print(f"  {name:44s} wall {r['wall_s']:6.2f} s ({r['wall_s'] / base['wall_s']:4.2f}x)  "
              f"system {r['sys_s']:5.2f} s ({r['sys_s'] / max(base['sys_s'], 1e-9):5.2f}x)  "
              f"page faults {r['faults']:9.0f} ({r['faults'] / max(base['faults'], 1):5.2f}x)")
    same = len({r["sha256"] for _, r in rows}) == 1
    print(f"exit waves identical in all four: {same} (sha256 {base['sha256'][:12]})")


if __name__ == "__main__":
    main()
