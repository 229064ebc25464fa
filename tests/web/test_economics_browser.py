"""The economics page in a real headless Chromium (Debian's, driven by Playwright): the KPIs load
from the API, and moving the throughput and PUE sliders moves $/M tokens and racks live."""

import pytest

pytestmark = pytest.mark.browser


def test_sliders_update_price_and_racks_live(server_url, browser):
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
