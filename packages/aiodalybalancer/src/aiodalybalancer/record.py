"""Plain records: equality, ``repr``, ``as_dict`` and ``replace`` from the class's ``__slots__``.

Frames, table rows and results are small records. ``dataclass`` would write them as well, but it
generates every class's methods with ``exec`` when the module is imported, about 10 kB of Home
Assistant's memory per class (docs/performance.md). The records here share one implementation
of those methods; each class writes its ``__slots__`` and its ``__init__``, nothing else.

Records are values: nothing assigns an attribute after ``__init__`` (the attributes are
``Final``, so mypy holds every caller to it; unlike a frozen dataclass, nothing stops it at run
time), except the counters that say so.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self


class Record:
    """A record whose attributes are its ``__slots__``, compared and shown by them."""

    __slots__: tuple[str, ...] = ()
    #: Attributes ``__init__`` computes from the others: left out of equality, hash, ``repr``,
    #: ``as_dict`` and ``replace``.
    _derived: ClassVar[frozenset[str]] = frozenset()
    #: Attributes left out of ``repr`` (a secret).
    _unshown: ClassVar[frozenset[str]] = frozenset()

    def _fields(self) -> list[str]:
        return [name for name in self.__slots__ if name not in self._derived]

    def as_dict(self) -> dict[str, Any]:
        """The attributes by name, in ``__slots__`` order."""
        return {name: getattr(self, name) for name in self._fields()}

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``."""
        return type(self)(**(self.as_dict() | changes))

    def __eq__(self, other: object) -> bool:
        """Equal to a record of the same class with equal attributes."""
        if other is self:
            return True
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields())

    def __hash__(self) -> int:
        """The hash of the attributes (records are not changed once built)."""
        return hash(tuple(getattr(self, name) for name in self._fields()))

    def __repr__(self) -> str:
        """``Class(name=value, ...)`` without the unshown attributes."""
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields() if name not in self._unshown)
        return f"{type(self).__name__}({shown})"
