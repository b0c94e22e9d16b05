"""`odyssey-data build|info|show TASK [key=value ...]`: build, describe or draw a corpus.

Options are the keys of `configs/task/TASK.yaml`, overridden as key=value. Each task's
corpus module `odyssey.data.<task>` provides `build(cfg, rebuild) -> Path`,
`info(cfg) -> dict` and, where pictures help, `show(cfg, n, out) -> Path`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from omegaconf import open_dict

from ..config import CONFIG_DIR, load_group_config
from ..data.missing import OPTIONS as MISSING_OPTIONS

CORPORA = {"music": "odyssey.data.music", "speech": "odyssey.data.speech",
           "handwriting": "odyssey.data.handwriting", "words": "odyssey.data.words"}


def _print_info(info: dict, indent: int = 0) -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            print(" " * indent + f"{key}:")
            _print_info(value, indent + 2)
        else:
            text = json.dumps(value) if isinstance(value, list | tuple) else value
            print(" " * indent + f"{key}: {text}")


def main(argv: list[str] | None = None) -> int:
    tasks = sorted(p.stem for p in (CONFIG_DIR / "task").glob("*.yaml"))
    parser = argparse.ArgumentParser(prog="odyssey-data", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "info", "show"])
    parser.add_argument("task", help=f"one of: {', '.join(tasks)}")
    parser.add_argument("overrides", nargs="*", help="key=value options of the task config")
    parser.add_argument("--rebuild", action="store_true", help="build even if cached")
    parser.add_argument("--n", type=int, default=6, help="show: how many samples")
    parser.add_argument("--out", type=Path, default=None, help="show: PNG path")
    parser.add_argument("--json", action="store_true", help="info: print JSON")
    args = parser.parse_args(argv)
    try:
        if args.task not in CORPORA:
            raise ValueError(f"unknown task {args.task!r}; expected one of: {', '.join(tasks)}")
        cfg = load_group_config("task", args.task, args.overrides)
        with open_dict(cfg):  # the missing-data options act on a loaded task, not a corpus
            for key in MISSING_OPTIONS:
                cfg.pop(key, None)
        corpus = importlib.import_module(CORPORA[args.task])
        if args.command == "build":
            path = corpus.build(cfg, rebuild=args.rebuild)
            print(f"built {args.task}: {path}")
        elif args.command == "info":
            info = corpus.info(cfg)
            print(json.dumps(info, indent=2)) if args.json else _print_info(info)
        else:
            if not hasattr(corpus, "show"):
                raise ValueError(f"'show' is not available for task {args.task}")
            out = corpus.show(cfg, n=args.n, out=args.out)
            print(f"wrote {out}")
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"odyssey-data: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
