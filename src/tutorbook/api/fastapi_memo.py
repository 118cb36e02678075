"""FastAPI's per-request questions about a route's parameters, answered once per parameter.

For every query, header and cookie parameter of every request, FastAPI (0.16x, pinned in
constraints.txt) asks again what the route's declaration already says: is the parameter's
annotation a sequence (`field_annotation_is_sequence`, a walk through `Optional` and
`Annotated` with `typing.get_origin` and `issubclass`), is it a JSON field, is it a model of
parameters, what names may it go by. The answers depend on the parameter's declaration alone,
which does not change after start-up: the teacher list's five query parameters cost about 400 of
its 1,900 Python calls a request (issue #33, docs/PERFORMANCE.md section 9).

`install()` wraps those four functions of `fastapi.dependencies.utils` in a memo keyed by their
arguments (a parameter is FastAPI's `ModelField`, hashed by identity; an annotation by itself).
An argument that cannot be hashed is answered by FastAPI's own function, as before. The answers
are FastAPI's own, computed the first time (tests/test_fastapi_memo.py compares them for every
parameter of the app); a FastAPI upgrade that renames one of them fails that test."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi.dependencies import utils

# Functions of fastapi.dependencies.utils that depend only on their arguments: a parameter's
# declaration (ModelField) or an annotation.
PURE = ("field_annotation_is_sequence", "_is_json_field", "_get_param_model", "_get_param_aliases")


def install() -> None:
    """Wrap FastAPI's per-parameter questions in a memo (once per process; again is a no-op)."""
    for name in PURE:
        fn = getattr(utils, name)
        if not getattr(fn, "tutorbook_memo", False):
            setattr(utils, name, memo(fn))


def memo(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` answering each set of (hashable) arguments once; `fn` itself for unhashable ones."""
    cached = functools.lru_cache(maxsize=4096)(fn)

    @functools.wraps(fn)
    def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            return cached(*args, **kwargs)
        except TypeError:  # an unhashable argument (FastAPI's own TypeErrors are raised again below)
            return fn(*args, **kwargs)

    answer.tutorbook_memo = True  # type: ignore[attr-defined]
    answer.uncached = fn  # type: ignore[attr-defined]
    return answer
