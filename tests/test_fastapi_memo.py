"""FastAPI's per-parameter questions answered once (tutorbook.api.fastapi_memo): the same answers
as FastAPI's own functions, for every parameter of every route of the app."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi.dependencies import utils

from tests.conftest import make_settings
from tutorbook.api import fastapi_memo
from tutorbook.app import create_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    return create_app(make_settings(f"sqlite:///{var / 'memo.db'}", var))


def _fields(app: Any) -> list[Any]:
    fields, seen = [], set()
    stack = [r.dependant for r in app.routes if getattr(r, "dependant", None) is not None]
    for entry in app.router.routes:
        for route in getattr(getattr(entry, "original_router", None), "routes", []):
            if getattr(route, "dependant", None) is not None:
                stack.append(route.dependant)
    while stack:
        dep = stack.pop()
        if id(dep) in seen:
            continue
        seen.add(id(dep))
        fields += [*dep.path_params, *dep.query_params, *dep.header_params, *dep.cookie_params]
        stack += dep.dependencies
    return fields


def test_every_parameter_gets_fastapis_own_answers(app):
    fields = _fields(app)
    assert len(fields) > 100
    for name in fastapi_memo.PURE:
        memo = getattr(utils, name)
        assert memo.tutorbook_memo, name  # installed by create_app
        own = memo.uncached
        for field in fields:
            arg = field.field_info.annotation if name == "field_annotation_is_sequence" else field
            assert memo(arg) == own(arg), (name, field.name)
            assert memo(arg) == own(arg), (name, field.name)  # the remembered answer too
    assert utils._get_param_aliases(fields[0], convert_underscores=True) == utils._get_param_aliases.uncached(
        fields[0], convert_underscores=True
    )


def test_installing_twice_wraps_once_and_an_unhashable_argument_is_answered_by_fastapi():
    fastapi_memo.install()
    once = utils.field_annotation_is_sequence
    fastapi_memo.install()
    assert utils.field_annotation_is_sequence is once
    assert once.uncached.__name__ == "field_annotation_is_sequence"
    unhashable = Annotated[list[int], {"not": "hashable"}]
    with pytest.raises(TypeError):
        hash(unhashable)
    assert once(unhashable) is True
    assert once(Annotated[int | None, "x"]) is False
    assert once(list[str] | None) is True
