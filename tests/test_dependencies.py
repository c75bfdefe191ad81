"""Every stage's `deps` in dvc.yaml list exactly the project modules its command imports (transitively,
module- or function-level), and the one-way import rule holds: simulation never imports torch,
training never imports abTEM, aggregation and plotting import neither."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "hrtem_ood"
#: Modules that only decide where tasks run (dask, the local worker pool). No stage lists them, so editing them
#: reruns nothing; test_simulation, test_training and test_cluster show byte-identical outputs under every executor.
SCHEDULING_ONLY = {"src/hrtem_ood/execution/parallel.py"}


def _module_file(name: str) -> Path | None:
    path = SRC / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(project modules, top-level third-party packages) imported anywhere in module ``name``."""
    file = _module_file(name)
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    project, external = set(), set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (project if alias.name.startswith("hrtem_ood") else external).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if not mod.startswith("hrtem_ood"):
                external.add(mod)
                continue
            project.add(mod)
            project.update(f"{mod}.{a.name}" for a in node.names if _module_file(f"{mod}.{a.name}"))
    return {m for m in project if _module_file(m)}, {m.split(".")[0] for m in external}


def closure(name: str) -> tuple[set[str], set[str]]:
    """Every project module executed by importing ``name`` (packages' ``__init__`` included), and every
    third-party package they import."""
    seen, external, todo = set(), set(), [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo.extend(".".join(parts[:k]) for k in range(1, len(parts)))  # parent packages run first
        project, ext = _imports(mod)
        todo.extend(project)
        external |= ext
    return seen, external


def _stage_module(cmd: str) -> str:
    match = re.match(r"(?:PYTHONHASHSEED=0 )?python -m (hrtem_ood\.stages\.\w+)\b", cmd)
    assert match, f"stage command does not run a stage module: {cmd!r}"
    return match.group(1)


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: (s["do"] if "do" in s else s) for name, s in stages.items()}


def docstring_only(path: Path) -> bool:
    """A file whose only statement is its docstring (a subpackage's ``__init__``): it decides no output's bytes."""
    body = ast.parse(path.read_text()).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def code_deps(cmd: str) -> set[str]:
    """The code files a stage command's bytes can depend on: every project module it imports (transitively), less
    the scheduling-only modules and the files that hold nothing but a docstring."""
    modules, _ = closure(_stage_module(cmd))
    files = {_module_file(m) for m in modules}
    return {f.relative_to(REPO).as_posix() for f in files if not docstring_only(f)} - SCHEDULING_ONLY


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_code_deps_are_exactly_its_imports(stage):
    spec = _stages()[stage]
    expected = code_deps(spec["cmd"])
    listed = {d for d in spec["deps"] if isinstance(d, str) and d.endswith(".py")}
    assert not expected - listed, f"{stage}: deps miss {sorted(expected - listed)}"
    assert not listed - expected, f"{stage}: deps list code it does not import: {sorted(listed - expected)}"


def test_scheduling_only_modules_hold_no_science():
    """A module left out of every stage's deps imports no other project module and no science library, so no
    computation that decides an output's bytes can hide in it."""
    for path in SCHEDULING_ONLY:
        name = ".".join(Path(path).relative_to("src").with_suffix("").parts)
        modules, external = closure(name)
        parents = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}  # its packages' __init__
        assert modules == {name} | parents, sorted(modules)
        assert not external & {"torch", "timm", "abtem", "numpy", "scipy", "h5py"}, sorted(external)


def test_every_stage_module_is_a_stage():
    """One module per stage, named as the stage."""
    modules = {p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__"}
    assert modules == set(_stages())
    for stage, spec in _stages().items():
        assert _stage_module(spec["cmd"]) == f"hrtem_ood.stages.{stage}"


def test_closure_sees_function_level_and_relative_imports():
    """The checker itself: a function-level `from ..x import` and a package `__init__` are found."""
    modules, external = closure("hrtem_ood.stages.transfer")
    assert {"hrtem_ood.learning.training", "hrtem_ood.learning.model", "hrtem_ood.stages", "hrtem_ood",
            "hrtem_ood.errors"} <= modules
    assert "torch" in external and "hrtem_ood.physics.simulation" not in modules
    modules, _ = closure("hrtem_ood.stages.aggregate")
    assert "hrtem_ood.dataio.io" in modules  # imported inside a function of report.py / top of aggregation


@pytest.mark.parametrize("module, forbidden", [
    ("hrtem_ood.physics.simulation", {"torch", "timm"}),
    ("hrtem_ood.stages.simulate", {"torch", "timm"}),
    ("hrtem_ood.stages.image", {"torch", "timm"}),
    ("hrtem_ood.learning.training", {"abtem"}),
    ("hrtem_ood.stages.transfer", {"abtem"}),
    ("hrtem_ood.results.aggregation", {"torch", "abtem"}),
    ("hrtem_ood.stages.aggregate", {"torch", "abtem", "timm"}),
    ("hrtem_ood.stages.match", {"torch", "abtem", "timm"}),
    ("hrtem_ood.matching.microscope", {"torch", "abtem", "timm"}),
    ("hrtem_ood.config.params", {"torch", "abtem", "timm"}),
])
def test_imports_flow_one_way(module, forbidden):
    _, external = closure(module)
    assert not external & forbidden, f"{module} reaches {sorted(external & forbidden)}"
