"""``@datarecord``: how DeployGuard declares its values (findings, snapshots, outcome records, ports).

A record is immutable to the type checker and a plain slotted dataclass at runtime: change one with
``dataclasses.replace``; mypy rejects assigning to a field.

NOTE: not ``@dataclass(frozen=True)``, for cold start. On Python 3.12 a frozen dataclass compiles
(``exec``) ``__setattr__``, ``__delattr__`` and ``__hash__`` besides ``__init__``, ``__repr__`` and
``__eq__``, and a longer ``__init__``: about 1.7x the instructions to create the class (5.3 M vs
3.2 M for six fields, counted with callgrind), paid at every cold start for every record on the
import path. Records are therefore not hashable; nothing uses one as a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def datarecord(cls: type[T]) -> type[T]:
    return dataclass(slots=True, kw_only=True)(cls)
