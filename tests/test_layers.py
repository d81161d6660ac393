"""The package's layers and the directions they may import in.

    pytest tests/test_layers.py

    cli -> stages -> {core, analysis} -> foundation (memcap.io, records, config_keys, corpora)

memcap.core (torch) never imports a stage, the analysis or the command line; memcap.analysis
(pandas, matplotlib) never imports core, a stage or the command line, and so never torch:
a summary job runs without it; the foundation modules import no subpackage and no cli.
Imports are read from the source (every ``import``, at module level or inside a function),
so a lazy import breaks the rule as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memcap"
FOUNDATION = ["memcap.io", "memcap.records", "memcap.config_keys", "memcap.corpora", "memcap.registry"]
SUBPACKAGES = ["memcap.core", "memcap.stages", "memcap.analysis"]
# module (or package) prefix -> the prefixes it must not import
FORBIDDEN = {
    "memcap.core": ["memcap.stages", "memcap.analysis", "memcap.cli"],
    "memcap.analysis": ["memcap.core", "memcap.stages", "memcap.cli"],
    "memcap.stages": ["memcap.cli"],
    **{module: [*SUBPACKAGES, "memcap.cli"] for module in FOUNDATION},
}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """memcap/analysis/tables.py -> memcap.analysis.tables; memcap/core/__init__.py -> memcap.core."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in `source`, wherever it stands; for
    ``from X import y`` both X and X.y (y may be a module). Relative imports are resolved
    against `module` (a package when `is_package`)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
    return found


def layer_violations(root: Path = PACKAGE) -> list[str]:
    """'<module> imports <name> (line n): <layer> must not import <prefix>' for every
    import against the directions above."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        rules = [(layer, banned) for layer, banned in FORBIDDEN.items() if _within(module, layer)]
        names = imported_names(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        for layer, banned in rules:
            for name, line in names:
                for prefix in banned:
                    if _within(name, prefix):
                        problems.append(f"{module} imports {name} (line {line}): {layer} must not import {prefix}")
    return problems


def test_the_layers_import_only_downwards():
    problems = layer_violations()
    assert not problems, "imports against the layers (cli -> stages -> {core, analysis} -> foundation):\n" + "\n".join(
        problems
    )


def test_the_check_sees_lazy_and_relative_imports():
    source = textwrap.dedent(
        """
        from memcap.io import read_jsonl

        def lazy():
            from memcap.stages import geometry
            import memcap.core.engine

        from ..stages.precision import quantise
        from . import metrics
        """
    )
    names = {name for name, _ in imported_names(source, "memcap.analysis.tables")}
    assert {"memcap.stages.geometry", "memcap.core.engine", "memcap.stages.precision", "memcap.analysis.metrics"} <= (
        names
    )
    assert "memcap.analysis" in {name for name, _ in imported_names("from . import x", "memcap.analysis", True)}


def test_a_violation_names_the_module_and_the_import(tmp_path):
    bad = tmp_path / "memcap" / "analysis" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def draw():\n    from memcap.stages.geometry import summary\n")
    problems = [p for p in layer_violations(tmp_path / "memcap") if p.startswith("memcap.analysis.bad")]
    assert problems == [
        "memcap.analysis.bad imports memcap.stages.geometry (line 2): memcap.analysis must not import memcap.stages",
        "memcap.analysis.bad imports memcap.stages.geometry.summary (line 2): memcap.analysis must not import "
        "memcap.stages",
    ]


NO_TORCH = textwrap.dedent(
    """
    import importlib
    import pkgutil
    import sys


    class NoTorch:
        "Makes torch unimportable: every import of torch or torch.* raises ImportError."

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is unimportable in this test ({name})")
            return None


    sys.meta_path.insert(0, NoTorch())
    import memcap.analysis

    names = sorted(m.name for m in pkgutil.iter_modules(memcap.analysis.__path__, "memcap.analysis."))
    for name in names:
        importlib.import_module(name)
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    assert not loaded, loaded
    print("\\n".join(names))
    """
)


def test_every_analysis_module_imports_without_torch():
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    imported = done.stdout.split()
    on_disk = sorted(f"memcap.analysis.{p.stem}" for p in (PACKAGE / "analysis").glob("*.py") if p.stem != "__init__")
    assert imported == on_disk and "memcap.analysis.precision_summary" in imported
