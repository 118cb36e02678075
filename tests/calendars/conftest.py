import pytest

from tests.calendars.server import CalendarServer


@pytest.fixture(scope="session")
def calendar_server():
    server = CalendarServer().start()
    yield server
    server.stop()


@pytest.fixture
def calendars(calendar_server):
    """The calendar server with nothing served yet."""
    calendar_server.routes.clear()
    return calendar_server


@pytest.fixture
def dev_calendars(api, monkeypatch):
    """The live app (and its jobs) allowed to fetch http:// addresses on 127.0.0.1, as in development."""
    monkeypatch.setattr(api.state.settings, "calendar_allow_http", True)
    monkeypatch.setattr(api.state.settings, "calendar_allow_private", True)
    assert api.state.services.settings is api.state.settings
    return api
