"""TypedDicts written like the SDK's generated parameter types, for the schema's own tests
(annotations evaluated at class creation, so NotRequired is seen: no __future__ import here)."""

from typing import Literal, NotRequired, TypedDict


class Inner(TypedDict):
    size: int
    colour: NotRequired[Literal["red", "blue"] | str]


class Outer(TypedDict):
    items: NotRequired[list[Inner]]
    note: NotRequired[Literal[""] | str]
    tags: NotRequired[Literal[""] | dict[str, str]]
