import pytest

from tests import factories as f
from tests.web.helpers import WebClient


@pytest.fixture
def web(api):
    """A browser-like client of the pages, not logged in."""
    client = WebClient(api.state.base_url)
    yield client
    client.close()


@pytest.fixture
def teacher(c):
    return f.teacher(c, rate=6000)


@pytest.fixture
def parent(c):
    return f.parent(c)


@pytest.fixture
def parent_web(web, parent):
    web.login(parent["email"])
    return web


@pytest.fixture
def booking(parent, teacher):
    r = f.book(parent, teacher)
    assert r.status_code == 201, r.text
    return r.json()["data"]
