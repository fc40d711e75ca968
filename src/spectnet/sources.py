"""Which package sources a ``spectnet`` command runs: its import graph, read statically.

Every workflow rule runs one CLI command, and the source files that command can execute
are the rule's code inputs (Snakemake and DVC rerun the rule when one of them changes).
They are derived here, never listed by hand: the command's function in ``cli.py``
(``spectnet physionet preprocess`` -> ``cmd_physionet_preprocess``) and the ``cli.py``
helpers it calls give the first imports; every ``spectnet`` module those import follows,
transitively, with the ``__init__.py`` of each package on the way and the package data
files a module names (``springer2016.json``).

The files are read with :mod:`ast`, nothing is imported: building the DAG stays fast and
never loads torch. An import inside a function counts like one at the top (a module the
command may import is code it may run). Not code inputs: ``cli.py`` itself (editing one
command must not rerun every rule; the rule's command line is tracked by DVC and
Snakemake) and the params schema (its defaults reach each rule through the params slice
the rule passes).

Example:
    >>> files = command_sources("physionet preprocess")
    >>> "src/spectnet/preprocessing/audio.py" in files, "src/spectnet/cli.py" in files
    (True, False)
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

__all__ = ["command_function", "command_sources", "module_sources"]

PACKAGE = "spectnet"
#: The package sources of the repository (the workflow's code inputs are these files).
SOURCE_DIR = Path("src") / PACKAGE
#: Package data that is not code: the schema's defaults are part of each params slice.
NOT_CODE = {"schemas/params.schema.yaml"}


def command_function(command: str) -> str:
    """The function of ``cli.py`` that runs ``spectnet COMMAND``.

    Example:
        >>> command_function("plot-segmentation"), command_function("scenes train")
        ('cmd_plot_segmentation', 'cmd_scenes_train')
    """
    return "cmd_" + "_".join(command.split()).replace("-", "_")


def _stamp(root: Path) -> tuple:
    """What the caches below are keyed by: every file under ``root`` with its size and
    modification time (an edited file is read again within one process)."""
    return tuple(sorted((p.as_posix(), s.st_size, s.st_mtime_ns) for p in root.rglob("*")
                        if p.is_file() and p.suffix != ".pyc" for s in [p.stat()]))


def _module_file(root: Path, module: str) -> Path | None:
    """The file of module ``spectnet.a.b`` under ``root`` (the package directory)."""
    parts = module.split(".")[1:]
    candidates = [root.joinpath(*parts, "__init__.py")]
    if parts:
        candidates.insert(0, root.joinpath(*parts[:-1], parts[-1] + ".py"))
    return next((p for p in candidates if p.is_file()), None)


def _imported(root: Path, nodes, module: str, is_package: bool) -> set[str]:
    """The ``spectnet`` modules that the import statements among ``nodes`` name."""
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:                                   # relative: from . import x
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.split(".")[0] != PACKAGE:
                continue
            found.add(name)
            # `from spectnet.models import resnet` imports a module, not just a name.
            found |= {f"{name}.{a.name}" for a in node.names
                      if _module_file(root, f"{name}.{a.name}") is not None}
    return found


@lru_cache(maxsize=None)
def _module(root: Path, name: str, stamp: tuple) -> tuple[Path, frozenset[str], frozenset[Path]]:
    """A module's file, the ``spectnet`` modules it imports, the package data it names
    in a string (a path beside it or from the package root)."""
    path = _module_file(root, name)
    if path is None:
        raise ModuleNotFoundError(f"{name}: no such module under {root}")
    nodes = list(ast.walk(ast.parse(path.read_text(), filename=str(path))))
    strings = {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    here = path.parent.relative_to(root)
    data_files = {Path(f).relative_to(root).as_posix() for f, _, _ in stamp
                  if not f.endswith(".py")} - NOT_CODE
    data = {root / f for s in strings for f in ((here / s).as_posix(), s) if f in data_files}
    return path, frozenset(_imported(root, nodes, name, path.name == "__init__.py")), \
        frozenset(data)


def module_sources(modules, root: Path = SOURCE_DIR) -> set[Path]:
    """The files of ``modules`` and of everything they import, transitively (see module
    docstring), under ``root``."""
    root = Path(root)
    stamp = _stamp(root)
    files: set[Path] = set()
    seen: set[str] = set()
    pending = list(modules)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path, imports, data = _module(root, name, stamp)
        files |= {path, *data}
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]   # the packages
        pending += imports
    return files


@lru_cache(maxsize=None)
def _command_sources(command: str, root: Path, stamp: tuple) -> tuple[str, ...]:
    cli = root / "cli.py"
    tree = ast.parse(cli.read_text(), filename=str(cli))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    start = command_function(command)
    if start not in functions:
        raise LookupError(f"`spectnet {command}`: {cli} has no function {start}")
    # The command's function and the cli.py helpers it calls (_params, _device, ...).
    seen, pending = set(), [start]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending += [n.id for n in ast.walk(functions[name])
                    if isinstance(n, ast.Name) and n.id in functions]
    statements = [n for name in seen for n in ast.walk(functions[name])]
    statements += [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = _imported(root, statements, f"{PACKAGE}.cli", False)
    return tuple(sorted(p.as_posix() for p in module_sources(modules, root)))


def command_sources(command: str, root: str | Path = SOURCE_DIR) -> list[str]:
    """The source files ``spectnet COMMAND`` runs, as paths under ``root`` (relative when
    ``root`` is), sorted.

    Raises:
        LookupError: ``cli.py`` has no function for the command.
    """
    root = Path(root)
    return list(_command_sources(" ".join(command.split()), root, _stamp(root)))
