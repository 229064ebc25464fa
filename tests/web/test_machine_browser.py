"""The machine page in a real headless Chromium (Debian's, driven by Playwright): drag GPU power up
until a power check turns FAIL and check the page says so. CI installs chromium (.ci/run); a missing
browser fails the test unless FLOORLINE_NO_BROWSER=1 says this machine cannot run one."""

import os
import shutil
import socket
import sys
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


def test_drag_gpu_power_until_a_power_check_fails(server_url):
    _need_browser()
    from playwright.sync_api import sync_playwright

    exe = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server_url)
            page.wait_for_selector("[data-check-id='power.tray_peak']")
            assert page.locator(".check[data-status=FAIL]").count() == 0  # the default design holds
            assert page.locator("#n-pass").inner_text() == "24"

            slider = page.locator("input[data-key='gpu.power']")
            lo, hi, val = (float(v) for v in slider.evaluate("e => [e.min, e.max, e.value]"))
            box = slider.bounding_box()
            x = box["x"] + box["width"] * (val - lo) / (hi - lo)
            y = box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            failing = page.locator(".check[data-check-id^='power.'][data-status=FAIL]")
            while x < box["x"] + box["width"] and failing.count() == 0:
                x += 6
                page.mouse.move(x, y)
                page.wait_for_timeout(120)  # let the debounced POST /api/check come back
            page.mouse.up()

            failing.first.wait_for(state="visible", timeout=5000)
            moved = float(slider.input_value())
            assert moved > val, "the drag did not raise GPU power"
            pill = failing.first.locator(".pill")
            assert pill.inner_text() == "FAIL" and pill.is_visible()
            assert int(page.locator("#n-fail").inner_text()) >= 1
            shown = page.locator(".slider[data-key='gpu.power'] .slider-val").inner_text()
            assert shown.endswith("W") and float(shown.split()[0].replace(",", "")) == pytest.approx(moved)
        finally:
            browser.close()


def test_missing_browser_fails_unless_opted_out(monkeypatch):
    """CI must not go green by silently skipping the browser test."""
    me = sys.modules[__name__]

    monkeypatch.setattr(me, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(me.shutil, "which", lambda name: None)
    monkeypatch.delenv("FLOORLINE_NO_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="needs Chromium"):
        me._need_browser()
    monkeypatch.setenv("FLOORLINE_NO_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="FLOORLINE_NO_BROWSER=1"):
        me._need_browser()
