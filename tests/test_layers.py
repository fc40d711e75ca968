"""Layers only point down: every import between the package's top-level modules and
folders goes from a layer to one below it. Imports are parsed (ast), nothing is imported;
imports inside functions count (they are dependencies too).

The layers (:data:`STANDS_ON`, drawn in the README's Layout section): each stands on the
ones to its right or below its branch, and a module may import its own layer and every
layer reachable downwards from it, never up or sideways. The model side and the data
side meet in ``datasets``, whose example-store reader training reads from::

    cli
    ├─ workflow ─ config
    └─ prediction
       ├─ export ─ training
       ├─ experiments ─ reporting
       │                ├─ training ─┬─ models ─ frontend ─ functional
       │                │            └─ datasets ─ config
       │                ├─ evaluation ─ frontend
       │                ├─ plotting ─ functional
       │                └─ grid ─ config
       └─ segmentation ─ preprocessing ─ datasets
    base: below every layer

``workflow`` is workflow.py and sources.py, ``config`` config.py and params.py,
``functional`` functional.py and _recursive.py, ``base`` errors, atomic, runtime, parallel
and the package's ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spectnet"

#: Each layer and the layers right below it.
STANDS_ON: dict[str, set[str]] = {
    "cli": {"workflow", "prediction"},
    "workflow": {"config"},
    "prediction": {"export", "experiments", "segmentation"},
    "export": {"training"},
    "experiments": {"reporting"},
    "reporting": {"training", "evaluation", "plotting", "grid"},
    "training": {"models", "datasets"},
    "evaluation": {"frontend"},
    "models": {"frontend"},
    "plotting": {"functional"},
    "frontend": {"functional"},
    "functional": set(),
    "segmentation": {"preprocessing"},
    "preprocessing": {"datasets"},
    "datasets": {"config"},
    "grid": {"config"},
    "config": set(),
    "base": set(),
}
#: The top-level modules and folders of each layer (``__init__``: the package itself).
MEMBERS: dict[str, set[str]] = {
    "cli": {"cli"},
    "workflow": {"workflow", "sources"},
    "prediction": {"prediction"},
    "export": {"export"},
    "experiments": {"experiments"},
    "reporting": {"reporting"},
    "training": {"training"},
    "evaluation": {"evaluation"},
    "models": {"models"},
    "plotting": {"plotting"},
    "frontend": {"frontend"},
    "functional": {"functional", "_recursive"},
    "segmentation": {"segmentation"},
    "preprocessing": {"preprocessing"},
    "datasets": {"datasets"},
    "grid": {"grid"},
    "config": {"config", "params"},
    "base": {"errors", "atomic", "runtime", "parallel", "__init__"},
}
BASE = "base"


def top_level(package: Path, module: str) -> str:
    """The top-level module or folder of a dotted name under ``spectnet``: ``spectnet.x.y``
    -> ``x``; ``spectnet`` itself and its attributes (``spectnet.__version__``) ->
    ``__init__``."""
    parts = module.split(".")
    if len(parts) > 1 and ((package / parts[1]).is_dir()
                           or (package / f"{parts[1]}.py").is_file()):
        return parts[1]
    return "__init__"


def imports(package: Path) -> list[tuple[str, int, str, str]]:
    """Every import of the package by the package: ``(file, line, from, to)`` with the
    importing and the imported top-level module or folder."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        here = parts[:-1]  # where relative imports start (an __init__'s: its own folder)
        source = top_level(package, ".".join(parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (here[: len(here) - node.level + 1] if node.level else [])
                module = ".".join(base + ([node.module] if node.module else []))
                # `from spectnet import x`: x is a module or an attribute of the package
                targets = [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == package.name:
                    found.append((str(path.relative_to(package)), node.lineno, source,
                                  top_level(package, target)))
    return sorted(set(found))


def layer_of(member: str) -> str:
    return next(layer for layer, members in MEMBERS.items() if member in members)


def reachable(layer: str) -> set[str]:
    """The layers ``layer`` may import: itself, everything below it, and ``base``."""
    seen, todo = {layer, BASE}, [layer]
    while todo:
        for lower in STANDS_ON[todo.pop()]:
            if lower not in seen:
                seen.add(lower)
                todo.append(lower)
    return seen


def back_arrows(package: Path) -> list[str]:
    return [f"{file}:{line}: {source} ({layer_of(source)}) imports {target} "
            f"({layer_of(target)})"
            for file, line, source, target in imports(package)
            if layer_of(target) not in reachable(layer_of(source))]


def test_every_module_and_folder_has_one_layer():
    present = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if p.suffix == ".py" or (p.is_dir() and any(p.rglob("*.py")))}
    declared = [m for members in MEMBERS.values() for m in members]
    assert len(declared) == len(set(declared)), "a module is in two layers"
    assert set(declared) == present
    assert set(MEMBERS) == set(STANDS_ON)


def test_layers_form_a_hierarchy():
    for layer in STANDS_ON:
        assert all(layer not in reachable(lower) for lower in STANDS_ON[layer]), layer


def test_imports_only_point_down():
    assert back_arrows(PACKAGE) == []


def test_the_check_finds_an_arrow_that_points_up(tmp_path):
    """The parser on a miniature package: absolute, relative, package-attribute and
    function-level imports are all seen, and only the upward ones are reported."""
    package = tmp_path / "spectnet"
    files = {
        "__init__.py": '__version__ = "1"\n',
        "errors.py": "",
        "functional.py": "from spectnet import __version__\n",
        "frontend.py": "from . import functional as F\nfrom .errors import x\n",
        "datasets/__init__.py": "",
        "datasets/store.py": ("def f():\n    import spectnet.training.data\n"
                              "from ..functional import y\n"),
        "training/__init__.py": "",
        "training/data.py": "from spectnet.datasets.store import z\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert imports(package) == [
        ("datasets/store.py", 2, "datasets", "training"),
        ("datasets/store.py", 3, "datasets", "functional"),
        ("frontend.py", 1, "frontend", "functional"),
        ("frontend.py", 2, "frontend", "errors"),
        ("functional.py", 1, "functional", "__init__"),
        ("training/data.py", 1, "training", "datasets")]
    assert back_arrows(package) == [
        "datasets/store.py:2: datasets (datasets) imports training (training)",
        "datasets/store.py:3: datasets (datasets) imports functional (functional)"]
