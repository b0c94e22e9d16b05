"""One registry type for every pluggable kind (cells, tasks), and who is registering now.

This module imports nothing of odyssey, so `odyssey.cells` and `odyssey.tasks` each hold a
`Registry` and `odyssey.plugins` (which imports both) can say which plugin is being loaded
through `registering_as` without any import running upward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

# the origin of the entries that ship with odyssey
BUILTIN = "odyssey"
# the origin of an entry registered outside a plugin load (a script, a notebook)
UNATTRIBUTED = "__main__"


class Entry(Protocol):
    """What a registry holds: something with a name and the plugin (origin) it came from."""

    @property
    def name(self) -> str: ...

    @property
    def origin(self) -> str: ...


E = TypeVar("E", bound=Entry)

_origins: list[str] = []  # the plugins being loaded, innermost last


@contextmanager
def registering_as(origin: str) -> Iterator[None]:
    """Attribute every registration made inside the block to `origin` (a plugin's key)."""
    _origins.append(origin)
    try:
        yield
    finally:
        _origins.pop()


def current_origin() -> str | None:
    """The plugin being loaded right now (what its registrations are attributed to)."""
    return _origins[-1] if _origins else None


def origin_or_current(origin: str | None) -> str:
    """`origin` when given, else the plugin being loaded, else "__main__"."""
    return origin if origin is not None else (current_origin() or UNATTRIBUTED)


class Registry(Generic[E]):
    """Named entries in registration order; a name taken by another entry is an error.

    `kind` names the entries in messages ("cell", "task"); `case_insensitive` looks names up
    in upper case (cell names also name folders and table rows); `error` is the exception a
    clash raises; `same(old, new)` says when registering again is a harmless repeat.
    """

    def __init__(self, kind: str, *, error: type[ValueError] = ValueError,
                 case_insensitive: bool = False,
                 same: Callable[[E, E], bool] = lambda old, new: old == new) -> None:
        self.kind, self.error, self.case_insensitive, self._same = (
            kind, error, case_insensitive, same)
        self._entries: dict[str, E] = {}

    def key(self, name: str) -> str:
        """The lookup key of `name`."""
        return name.upper() if self.case_insensitive else name

    def add(self, entry: E) -> E:
        """Register `entry`; the entry already there when it is the same definition again."""
        old = self._entries.get(self.key(entry.name))
        if old is not None:
            if self._same(old, entry):
                return old
            owner = (f"a built-in {self.kind}" if old.origin == BUILTIN
                     else f"plugin {old.origin!r}")
            spelled = f" ({old.name})" if self.case_insensitive else ""
            raise self.error(f"{self.kind} name {entry.name!r} is already taken by "
                             f"{owner}{spelled}; choose another name")
        self._entries[self.key(entry.name)] = entry
        return entry

    def remove(self, name: str) -> None:
        """Drop the entry called `name` (KeyError when there is none)."""
        del self._entries[self.key(name)]

    def get(self, name: object) -> E | None:
        """The entry called `name`, or None."""
        return self._entries.get(self.key(name)) if isinstance(name, str) else None

    def __contains__(self, name: object) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        """The registered names, as spelled when registered, in registration order."""
        return tuple(e.name for e in self._entries.values())

    def snapshot(self) -> dict[str, E]:
        """A copy of the entries, for `restore` (tests, notebooks reloading a plugin)."""
        return dict(self._entries)

    def restore(self, snapshot: dict[str, E]) -> None:
        """Put back the entries of an earlier `snapshot`, dropping any added since."""
        self._entries.clear()
        self._entries.update(snapshot)
