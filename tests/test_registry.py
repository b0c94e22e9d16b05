"""The registry leaf: one generic registry type and who is registering."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from odyssey.registry import (
    BUILTIN,
    Registry,
    current_origin,
    origin_or_current,
    registering_as,
)


@dataclass(frozen=True)
class Thing:
    name: str
    origin: str = BUILTIN
    value: int = 0


class ThingError(ValueError):
    pass


def test_a_taken_name_is_an_error_naming_its_owner():
    things = Registry("thing", error=ThingError, case_insensitive=True)
    first = things.add(Thing("Box"))
    assert things.add(Thing("Box")) is first  # the same definition again: a harmless repeat
    with pytest.raises(ThingError, match=r"thing name 'BOX' is already taken by a built-in "
                                         r"thing \(Box\); choose another name"):
        things.add(Thing("BOX", "lab.py", 1))
    things.add(Thing("Jar", "lab.py"))
    with pytest.raises(ThingError, match="already taken by plugin 'lab.py'"):
        things.add(Thing("jar", "other.py"))
    assert things.names() == ("Box", "Jar") and "box" in things and things.get("JAR").name == "Jar"
    assert [t.name for t in things] == ["Box", "Jar"] and len(things) == 2


def test_snapshot_and_restore_drop_what_came_since():
    things = Registry("thing")
    things.add(Thing("a"))
    saved = things.snapshot()
    things.add(Thing("b", "lab.py"))
    things.remove("a")
    things.restore(saved)
    assert things.names() == ("a",) and "A" not in things  # case-sensitive by default


def test_registrations_are_attributed_to_the_innermost_plugin():
    assert current_origin() is None and origin_or_current(None) == "__main__"
    with registering_as("outer.py"):
        with registering_as("inner.py"):
            assert origin_or_current(None) == "inner.py"
        assert current_origin() == "outer.py"
        assert origin_or_current("given") == "given"
    with pytest.raises(RuntimeError), registering_as("broken.py"):
        raise RuntimeError
    assert current_origin() is None
