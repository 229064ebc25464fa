"""Shared scaffolding for the browser tests: Debian's Chromium driven by Playwright, against the real app
served by uvicorn on a free loopback port. CI installs chromium (.ci/run); a missing browser fails the
test unless FLOORLINE_NO_BROWSER=1 says this machine cannot run one."""

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


def need_browser() -> None:
    missing = None
    if not chromium_path():
        missing = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright Python package is not installed (pip install playwright)"
    if missing:
        if os.environ.get("FLOORLINE_NO_BROWSER") == "1":
            pytest.skip(f"FLOORLINE_NO_BROWSER=1: {missing}")
        pytest.fail(f"browser test needs Chromium: {missing}; set FLOORLINE_NO_BROWSER=1 to skip on purpose")


@contextmanager
def serve_app():
    """The FastAPI app on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    from floorline.web.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def launched_browser():
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
