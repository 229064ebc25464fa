"""The machine page in a real headless Chromium (Debian's, driven by Playwright): drag GPU power up
until a power check turns FAIL and check the page says so. Browser and server come from tests/web/browser.py."""

import pytest

from tests.web import browser as browser_mod

pytestmark = pytest.mark.browser


def test_drag_gpu_power_until_a_power_check_fails(server_url, browser):
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


def test_missing_browser_fails_unless_opted_out(monkeypatch):
    """CI must not go green by silently skipping the browser test."""
    monkeypatch.setattr(browser_mod, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser_mod.shutil, "which", lambda name: None)
    monkeypatch.delenv("FLOORLINE_NO_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="needs Chromium"):
        browser_mod.need_browser()
    monkeypatch.setenv("FLOORLINE_NO_BROWSER", "1")
    with pytest.raises(pytest.skip.Exception, match="FLOORLINE_NO_BROWSER=1"):
        browser_mod.need_browser()
