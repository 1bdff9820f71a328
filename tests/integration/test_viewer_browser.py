"""``alignbf view`` in a real browser (Playwright driving the system Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.viewer_fixtures import make_run, serving, whisper_sim

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
if not CHROMIUM.exists():
    pytest.skip("needs the system Chromium (apt-get install -y chromium)", allow_module_level=True)

SCRIPTS = {
    "ar": r"[\u0600-\u06ff]",
    "th": r"[\u0e00-\u0e7f]",
    "ja": r"[\u3040-\u30ff\u4e00-\u9fff]",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("viewer-browser") / "run")


def test_browse_filter_open_a_conversation_and_see_every_channel(run_dir: Path) -> None:
    target = whisper_sim(run_dir, "ar")
    with serving(run_dir) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/sims")
            assert page.locator("#sims tbody tr").count() == 8
            page.select_option("select[name=language]", "ar")
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"language=ar"))
            assert page.locator("#sims tbody tr").count() == 2
            page.click(f"a[href='/sim/{target}']")
            page.wait_for_url(f"**/sim/{target}")

            for channel in ("talk", "monologue", "whisper"):
                message = page.locator(f".msg[data-channel={channel}]").first
                assert message.is_visible(), channel
                assert message.evaluate("e => getComputedStyle(e).direction") == "rtl"
            styles = {
                channel: page.locator(f".msg[data-channel={channel}]").first.evaluate(
                    "e => getComputedStyle(e).backgroundColor + getComputedStyle(e).fontStyle"
                )
                for channel in ("talk", "monologue", "whisper")
            }
            assert len(set(styles.values())) == 3, styles
            whisper = page.locator(".msg[data-channel=whisper]").first.inner_text()
            assert "whispers to" in whisper.lower()
            hit = page.locator(".msg mark.hit").first
            assert hit.is_visible() and hit.get_attribute("data-category")
            colour = hit.evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
            assert re.search(SCRIPTS["ar"], page.locator("main").inner_text())
            page.screenshot(path=str(run_dir / "viewer-conversation.png"), full_page=False)

            page.goto(base + "/sim/" + target + "#turn-2")
            assert page.evaluate("location.hash") == "#turn-2"
            assert page.locator("#turn-2").is_visible()
            for language in ("th", "ja"):
                page.goto(base + "/sim/" + whisper_sim(run_dir, language))
                assert re.search(SCRIPTS[language], page.locator("main").inner_text()), language
        finally:
            browser.close()
    shot = run_dir / "viewer-conversation.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exported_list_filters_from_the_query_string_on_disk(run_dir: Path, tmp_path: Path) -> None:
    from alignbf.report.viewer import export_run_pages

    out = tmp_path / "viewer"
    export_run_pages(run_dir, out)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((out / "index.html").as_uri())
            page.click("#cells tbody tr:has(td:text-is('th')) >> text=simulations")
            assert page.locator("#sims tbody tr:visible").count() == 1
            assert page.locator("#shown").inner_text() == "1"
            page.locator("#sims tbody tr:visible a").click()
            assert re.search(SCRIPTS["th"], page.locator("main").inner_text())
            page.click("header .crumbs a >> nth=0")
            assert page.url.endswith("index.html")
            page.goto((out / "sims.html").as_uri() + "?sort=cpi&order=desc")
            cpi = [float(v) for v in page.locator("#sims tbody td:nth-child(9)").all_inner_texts()]
            assert len(cpi) == 8 and cpi == sorted(cpi, reverse=True)
        finally:
            browser.close()
