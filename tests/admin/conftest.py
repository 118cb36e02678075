import httpx
import pytest


@pytest.fixture
def c(api):
    with httpx.Client(base_url=api.state.base_url, timeout=60) as client:
        yield client
