"""Loading plugins: the user's modules that register cells and tasks (docs/extending.md "Plugins").

A plugin is an importable module name (`my_cells`, `my_lab.cells`) or a path to a .py file;
importing it runs its `odyssey.cells.register_cell` / `odyssey.tasks.register_task` calls,
attributed to it (odyssey.registry.registering_as). The entry points load them: odyssey-sweep
those named by its config key `plugins`, and always every entry point of
the group `odyssey.plugins` (a package declares one in its pyproject.toml:
`[project.entry-points."odyssey.plugins"] my_cells = "my_lab.cells"`). Each plugin is loaded
once per process. A plugin that fails to import, registers a taken name, registers nothing,
or whose cell does not run on a small input is a `PluginError` naming it and what is wrong,
raised before anything trains; what it registered before failing is removed again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from . import registry
from .cells import registry as cells
from .tasks import TASKS, remove_task, task_names

ENTRY_POINT_GROUP = "odyssey.plugins"


class PluginError(ValueError):
    """A plugin that cannot be used; the message names it and says what is wrong."""


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: what the user wrote, where it came from, what it registered."""

    ref: str
    source: str  # the file it was loaded from
    cells: tuple[str, ...]
    tasks: tuple[str, ...]


_loaded: dict[str, Plugin] = {}  # key (resolved path, module name or entry point) -> plugin


def is_path(ref: str) -> bool:
    """Whether a plugin reference names a file (ends in .py or holds a path separator)."""
    return ref.endswith(".py") or "/" in ref or "\\" in ref


def resolve(ref: str, base: Path | None = None) -> str:
    """A path reference made absolute (against `base`, default the working directory), so
    that workers started elsewhere load the same file; a module name unchanged."""
    if not isinstance(ref, str) or not ref.strip():
        raise PluginError(f"plugin {ref!r}: expected a module name or a path to a .py file")
    if not is_path(ref):
        return ref
    path = Path(ref).expanduser()
    return str(path if path.is_absolute() else ((base or Path.cwd()) / path).resolve())


def loaded() -> dict[str, Plugin]:
    """The plugins loaded in this process, by reference."""
    return dict(_loaded)


def load_plugins(refs: Sequence[str] = (), *, entry_points_too: bool = True) -> list[Plugin]:
    """Load the plugins `refs` (module names or .py paths) and the `odyssey.plugins` entry
    points; those already loaded in this process are not loaded again."""
    if isinstance(refs, str):
        refs = [refs]
    out = []
    if entry_points_too:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            out.append(_load(f"entry point {ep.name} ({ep.value})", ep.value,
                             lambda ep=ep: _call_entry_point(ep)))
    for ref in refs:
        ref = resolve(ref)
        imported_before = not is_path(ref) and ref in sys.modules
        out.append(_load(ref, ref, lambda ref=ref: _import(ref), fresh=not imported_before))
    return out


def _call_entry_point(ep) -> str:
    """Import an entry point's module; when it names a function, call it to register."""
    obj = ep.load()
    if callable(obj):
        obj()
    module = sys.modules.get(ep.module)
    return str(getattr(module, "__file__", "") or ep.value)


def _import(ref: str) -> str:
    """Import the module or file `ref`; returns the file it came from."""
    if is_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise PluginError(f"plugin {ref!r}: no such file")
        name = f"odyssey_plugin_{path.stem}_{hashlib.sha1(ref.encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"plugin {ref!r}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so that classes defined there pickle and resolve
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return str(path)
    try:
        module = importlib.import_module(ref)
    except ModuleNotFoundError as e:
        if e.name and (ref == e.name or ref.startswith(e.name + ".")):
            raise PluginError(f"plugin {ref!r}: no module named {e.name!r} (give an importable "
                              "module name, or a path to a .py file such as ./my_cells.py)"
                              ) from e
        raise
    return str(getattr(module, "__file__", "") or ref)


_PACKAGE = str(Path(__file__).resolve().parent)


def _where(exc: BaseException) -> str:
    """' (file:line)': the deepest traceback frame outside odyssey (the plugin's own line)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_PACKAGE)
              and "importlib" not in f.filename]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _load(key: str, ref: str, do_import, fresh: bool = True) -> Plugin:
    """Run `do_import` as plugin `key`, check what it registered, roll back on failure."""
    if key in _loaded:
        return _loaded[key]
    cells_before, tasks_before = set(cells.cell_names()), set(task_names())
    try:
        try:
            with registry.registering_as(key):
                source = do_import()
        except PluginError:
            raise
        except (cells.CellRegistrationError, ValueError, TypeError) as e:
            raise PluginError(f"plugin {key!r}: {e}{_where(e)}") from e
        except Exception as e:
            raise PluginError(f"plugin {key!r} failed to import: {type(e).__name__}: {e}"
                              f"{_where(e)}") from e
        new_cells = tuple(n for n in cells.cell_names() if n not in cells_before)
        new_tasks = tuple(n for n in task_names() if n not in tasks_before)
        if not new_cells and not new_tasks and fresh and not _already_registered(key):
            raise PluginError(f"plugin {key!r} registered no cells or tasks: it should call "
                              "odyssey.cells.register_cell(...) or "
                              "odyssey.tasks.register_task(...) when imported")
        for name in new_cells:
            try:
                cells.check_cell(name)
            except ValueError as e:
                raise PluginError(f"plugin {key!r}: {e}") from e
    except BaseException:
        for name in set(cells.cell_names()) - cells_before:
            cells.remove_cell(name)
        for name in set(task_names()) - tasks_before:
            remove_task(name)
        raise
    plugin = Plugin(ref, source, new_cells, new_tasks)
    _loaded[key] = plugin
    return plugin


def _already_registered(key: str) -> bool:
    """Whether cells or tasks attributed to `key` exist (imported earlier by other means)."""
    return any(c.origin == key for c in cells.CELLS) or any(t.origin == key for t in TASKS)
