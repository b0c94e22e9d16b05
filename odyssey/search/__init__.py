"""The sweep: random search over the variants on an Optuna store (DESIGN §4, §6).

`odyssey-sweep` (odyssey.search.app) is the Hydra front end; the store itself (opening it by
URL, provenance, finding a sweep's studies) is odyssey.store, shared with the analysis.
"""
