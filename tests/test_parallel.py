"""The fan-out's allocator setting: under dask's nanny environment (``MALLOC_TRIM_THRESHOLD_=65536``) glibc
maps every array over 128 kB fresh from the kernel, page fault by page fault; ``keep_freed_memory`` makes
freed arrays reused. Page faults are counted (``getrusage``), not timed, so the checks hold on a busy machine."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")

#: Minor page faults of 50 rounds of making and freeing a fresh 8 MB array (2,048 pages; fewer faults where
#: the kernel maps huge pages: 516 per round measured on the project's machines).
REUSE = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from hrtem_ood.execution.parallel import keep_freed_memory
    assert keep_freed_memory()
np.ones(1 << 20)
before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
for _ in range(50):
    np.ones(1 << 20)
print(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> int:
    out = subprocess.run([sys.executable, "-c", REUSE, mode], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    return int(out.stdout)


def test_under_the_nanny_setting_every_array_faults_in_again_until_freed_memory_is_kept():
    nanny = {"MALLOC_TRIM_THRESHOLD_": "65536"}
    assert _faults("as-is", **nanny) > 50 * 100  # every round maps its array afresh
    assert _faults("keep", **nanny) < 100  # the freed array is reused: not one round maps it again
    assert _faults("keep") < 100
