"""Recurrent cells as expression graphs (Jozefowicz et al. 2015): the representation, its
canonical form and hash, the equation printer, and the compiler to a registered cell."""

from .compile import (
    CompiledGraph,
    cell_name,
    parameter_count,
    parameter_shapes,
    register_graph,
)
from .core import (
    BINARY,
    INPUTS,
    NONLINEAR,
    OPS,
    Graph,
    GraphError,
    Node,
    ancestors,
    architecture_hash,
    canonical,
    canonical_string,
    parse_canonical,
    topological_order,
    validate,
)
from .equations import equations
from .library import GRAPHS, known, weights_from_builtin

__all__ = ["BINARY", "INPUTS", "NONLINEAR", "OPS", "GRAPHS", "CompiledGraph", "Graph",
           "GraphError", "Node", "ancestors", "architecture_hash", "canonical",
           "canonical_string", "cell_name", "equations", "known", "parameter_count",
           "parameter_shapes", "parse_canonical", "register_graph", "topological_order",
           "validate", "weights_from_builtin"]
