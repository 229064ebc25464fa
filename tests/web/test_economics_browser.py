"""The economics page in a real headless Chromium (Debian's, driven by Playwright): the KPIs load
from the API, and moving the throughput and PUE sliders moves $/M tokens and racks live."""

import os
import shutil
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_browser():
    missing = None
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
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


@pytest.fixture
def server_url():
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
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_sliders_update_price_and_racks_live(server_url):
    _need_browser()
    from playwright.sync_api import sync_playwright

    exe = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server_url + "economics.html")
            # seed 002's rack and its 2,173 tok/s/GPU row: $0.292/M, 1.78 racks for 1B tokens/hour
            page.wait_for_function("document.getElementById('kpi-usdm').textContent === '$0.292'", timeout=15000)
            assert page.text_content("#kpi-racks") == "1.78"
            # throughput to the top of its range: price and racks both fall
            page.focus("#s-tokens_per_s")
            page.keyboard.press("End")
            page.wait_for_function("document.getElementById('kpi-usdm').textContent !== '$0.292'", timeout=10000)
            cheap = float(page.text_content("#kpi-usdm").lstrip("$"))
            assert cheap < 0.292
            assert float(page.text_content("#kpi-racks")) < 1.78
            # PUE to its maximum: the power share of the rack-hour, and the price, go up
            before = page.text_content("#leg-power")
            page.focus("#s-pue")
            page.keyboard.press("End")
            page.wait_for_function(f"document.getElementById('leg-power').textContent !== {before!r}", timeout=10000)
            assert float(page.text_content("#kpi-usdm").lstrip("$")) > cheap
            assert page.is_hidden("#error")
        finally:
            browser.close()
