import pytest

from tests.web.browser import launched_browser, serve_app


@pytest.fixture
def server_url():
    with serve_app() as url:
        yield url


@pytest.fixture
def browser():
    with launched_browser() as b:
        yield b
