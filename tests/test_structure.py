"""What lives where, checked on the source: the layers (import-linter's contracts), the engine
and the algorithm load no Ray when imported, one function starts Ray, one table names the
methods, no module reaches into another's private names, and Ray internals only where no public
API exists."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from pipeline.methods import METHODS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"
# Ray internals with no public equivalent, each commented at the import (see the modules)
RAY_INTERNALS_ALLOWED = {"pipeline/train/loop.py": "ray.train.v2._internal.execution"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(REPO)), ast.parse(p.read_text()))
            for p in sorted(PACKAGE.rglob("*.py"))]


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_engine_algorithm_and_row_trainer_import_no_ray():
    code = ("import sys\n"
            "import pipeline.engine.loop, pipeline.engine.offline, pipeline.engine.heatmaps\n"
            "import pipeline.engine.evaluation, pipeline.engine.batches, pipeline.engine.report\n"
            "import pipeline.bench.runner, pipeline.dmt, pipeline.models, pipeline.methods\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow'}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"imported: {out.stdout}"


def test_the_import_contracts_hold_and_place_every_module():
    """import-linter's contracts (pyproject.toml: the layers, no Ray or MLflow below the shells,
    MLflow only in tracking, no cycles) hold, and every package and top-level module of
    ``pipeline`` sits in a layer, so a new one cannot stay outside the contract."""
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in contracts["contracts"] if c["type"] == "layers")
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    top = {f"pipeline.{p.stem}" for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert top == placed, (sorted(top - placed), sorted(placed - top))


def test_ray_is_started_in_one_place():
    callers = set()
    for path, tree in _modules():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "init" and getattr(node.func.value, "id", "") == "ray"):
                callers.add(path)
    assert callers == {"pipeline/ray_env.py"}


def test_method_names_are_written_only_in_the_method_table():
    names = set(METHODS)
    hits = set()
    for path, tree in _modules():
        progs = {id(k.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
                 for k in node.keywords if k.arg == "prog"}  # the `dmt` program, not a method
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in progs:
                hits.add(path)
    assert hits == {"pipeline/methods.py"}, hits


def test_no_module_imports_a_private_name_of_another():
    bad = [(path, module, name) for path, tree in _modules()
           for module, names in _imports(tree) if module.startswith("pipeline")
           for name in names if name.startswith("_") and name != "__version__"]
    assert not bad, bad


def test_ray_internals_only_where_no_public_api_exists():
    found = {}
    for path, tree in _modules():
        for module, _ in _imports(tree):
            parts = module.split(".")
            if parts[0] == "ray" and any(p.startswith("_") for p in parts):
                found[path] = module
    assert found == RAY_INTERNALS_ALLOWED
    for path in found:  # each with the reason beside it
        text = (REPO / path).read_text()
        assert "No public API" in text, path


def test_the_gpu_check_needs_only_torch_numpy_pyarrow_and_pillow():
    """On a GPU image without Ray, MLflow, decord, PyAV or PyYAML, the check's imports resolve
    and, with no CUDA device, it says so and exits 0 (the check itself is `make gpu-check`)."""
    code = ("import sys\n"
            "for name in ('ray', 'mlflow', 'decord', 'av', 'yaml'):\n"
            "    sys.modules[name] = None  # import fails, as where it is not installed\n"
            "sys.argv = ['gpu_check.py']\n"
            "import runpy\n"
            "ns = runpy.run_path('jobs/benchmarks/gpu_check.py', run_name='gpu_check')\n"
            "import torch\n"
            "torch.cuda.is_available = lambda: False\n"
            "print('exit', ns['main']([]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no CUDA device here" in out.stdout and out.stdout.strip().endswith("exit 0")
