"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright. Skipped
where Chromium or Playwright is missing (CI installs both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve.conftest import chromium


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, as CI does
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_upload_an_image_and_see_its_results(browser, live, query_png: Path, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(live.url + "/")
    assert page.title().startswith("dnh")
    page.wait_for_function("document.getElementById('status').textContent.includes('images')")
    page.fill("#k", "6")
    page.set_input_files("#file", str(query_png))
    page.wait_for_selector("#results .result")
    cards = page.locator("#results .result")
    assert cards.count() == 6
    assert page.locator("#preview-name").text_content() == "query.png"
    first = cards.nth(0)
    assert "#1" in first.locator(".rank").text_content()
    assert first.locator(".organ").text_content().strip()
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot = tmp_path / "results.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    first.click()
    page.wait_for_selector("#details[open]")
    assert "organ" in page.locator("#details-table").text_content()
    page.close()


def test_a_bad_file_shows_the_error_and_hint(browser, live, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page = browser.new_page()
    page.goto(live.url + "/")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "not a readable image" in page.locator("#error").text_content()
    assert page.locator("#results .result").count() == 0
    page.close()
