"""The sweep: random search over the variants on an Optuna store (DESIGN §4, §6).

`odyssey-sweep` (odyssey.search.app) is the Hydra front end; `storage.open_storage(url)`
is the one way to open a store (docs/results.md "Sweep store").
"""

from .storage import open_storage

__all__ = ["open_storage"]
