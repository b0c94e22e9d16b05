"""The sweep store, shared by the sweep (which writes it) and the analysis (which reads it).

`storage`: the one way to open an Optuna store from a URL, and the masking of its password;
`provenance`: what produced a trial (package versions, git commit, the run's config);
`sweeps`: finding a sweep by name (results/<sweep>/config.yaml), its store and its studies.
"""

from .storage import StorageURLError, mask_url, open_storage
from .sweeps import UnknownSweepError, list_sweeps, open_existing, study_name, sweep_studies

__all__ = ["StorageURLError", "mask_url", "open_storage", "UnknownSweepError", "list_sweeps",
           "open_existing", "study_name", "sweep_studies"]
