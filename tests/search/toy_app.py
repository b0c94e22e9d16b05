"""`odyssey-sweep` with the toy task registered, for end-to-end multirun tests:

    python -m tests.search.toy_app -m hydra/launcher=processes 'worker=range(0,3)' ...

The task function registers the toy task itself, so it works in any job process (a
spawned process, a submitit job), not only in this one.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from odyssey.config import CONFIG_DIR
from odyssey.search import app
from tests.toy import register

register()  # the launching process validates the config and prints the final table too


def toy_sweep(cfg: DictConfig) -> None:
    """odyssey-sweep's task function, with the toy task registered first."""
    register()
    app.main.__wrapped__(cfg)


main = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR),
                  config_name="config")(toy_sweep)

if __name__ == "__main__":
    main()
