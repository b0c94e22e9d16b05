"""An evolved architecture as a plugin cell file that `odyssey-sweep plugins=[...]` loads."""

from __future__ import annotations

import pprint
from pathlib import Path

from ..cells.graph import equations, parse_canonical

TEMPLATE = '''"""Cell {name}: architecture {hash} found by odyssey-evolve (sweep {sweep}).

{equations}

Load it in a sweep with plugins=[{path}] variants=[{name},...].
"""

from odyssey.cells.graph import Graph, register_graph

ARCHITECTURE = {architecture}

register_graph(Graph.from_dict(ARCHITECTURE), name={name!r},
               description="evolved architecture {hash} (odyssey-evolve)")
'''


def plugin_source(architecture: str, name: str, *, arch_hash: str = "", sweep: str = "",
                  path: str = "FILE") -> str:
    """The text of a plugin file registering `architecture` (a canonical string) as `name`."""
    graph = parse_canonical(architecture)
    data = pprint.pformat(graph.to_dict(), indent=1, width=90, sort_dicts=True)
    eqs = "\n".join(f"    {line}" for line in equations(graph))
    return TEMPLATE.format(name=name, hash=arch_hash, sweep=sweep, equations=eqs, path=path,
                           architecture=data)


def write_plugin(architecture: str, name: str, path: Path, **kwargs) -> Path:
    """Write the plugin file (its folder made if missing); returns its path."""
    path = Path(path)
    text = plugin_source(architecture, name, path=str(path), **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
