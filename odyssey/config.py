"""Where the Hydra config tree lives and how a single group file is read outside Hydra apps."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def load_group_config(group: str, name: str, overrides: list[str] | None = None) -> DictConfig:
    """`configs/<group>/<name>.yaml` with `key=value` overrides applied.

    An unknown name raises ValueError listing the files there are; an override of a key the
    file does not define raises ValueError naming it (a typo must not be silently ignored).
    """
    folder = CONFIG_DIR / group
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ValueError(f"no config {path}; {group} configs there are: {', '.join(known)}")
    cfg = OmegaConf.load(path)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key = item.split("=", 1)[0].lstrip("+")
        if not item.startswith("+") and OmegaConf.select(cfg, key, default="__missing__") == \
                "__missing__":
            raise ValueError(f"{path}: no key {key!r} to override (keys: "
                             f"{', '.join(str(k) for k in cfg)}); prefix with + to add one")
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item.lstrip("+")]))
    return cfg
