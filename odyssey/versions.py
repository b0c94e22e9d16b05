"""Versions of installed packages, for corpus manifests and trial records."""

from __future__ import annotations

import platform
from importlib import metadata


def package_versions(*names: str, python: bool = True) -> dict[str, str]:
    """{name: installed version or "not installed"}, with Python's version first if asked."""
    out = {"python": platform.python_version()} if python else {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
