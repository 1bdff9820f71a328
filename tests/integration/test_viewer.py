"""``alignbf view`` over plain HTTP on 127.0.0.1 and its static export; ``status --watch``."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

import alignbf
from tests.conftest import cli
from tests.integration.viewer_fixtures import (
    LANGUAGES,
    make_run,
    plant_reply,
    serving,
    whisper_sim,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("viewer") / "run")
    plant_reply(run)
    return run


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def _sim_links(page: str) -> list[str]:
    return re.findall(r'<td><a href="/sim/([0-9a-f]+)">', page)


def test_run_page_lists_every_cell_with_counts_and_means(run_dir: Path) -> None:
    with serving(run_dir) as base:
        status, page = _get(base + "/")
    assert status == 200
    rows = re.findall(r"<tr>\s*<td>(\w+)</td>", page)
    assert sorted(rows) == sorted([lang for lang in LANGUAGES for _ in range(2)])
    assert page.count('<span class="chip ok">ok 1</span>') == 8
    assert "/sims?language=ar&amp;alignment=1&amp;individuation=0&amp;model=llama-3.3-70b" in page


def test_list_filters_and_sorts_by_query_parameters(run_dir: Path) -> None:
    with alignbf.open_run(run_dir) as run:
        scores = run.scores()
    with serving(run_dir) as base:
        _, arabic = _get(base + "/sims?language=ar")
        _, aligned = _get(base + "/sims?alignment=1.0&status=ok")
        _, by_cpi = _get(base + "/sims?sort=cpi&order=desc")
        _, by_coercion = _get(base + "/sims?sort=z_coercive&order=asc")
    assert set(_sim_links(arabic)) == set(scores.loc[scores["language"] == "ar", "sim_id"])
    assert set(_sim_links(aligned)) == set(scores.loc[scores["alignment_ratio"] == 1.0, "sim_id"])
    assert _sim_links(by_cpi) == list(scores.sort_values("cpi", ascending=False)["sim_id"])
    assert _sim_links(by_coercion) == list(scores.sort_values("z_coercive")["sim_id"])


def test_bad_parameters_and_unknown_pages_get_error_pages(run_dir: Path) -> None:
    with serving(run_dir) as base:
        missing_sim = _get(base + "/sim/0123456789abcdef0123")
        missing_page = _get(base + "/nowhere")
        bad_sort = _get(base + "/sims?sort=price")
        bad_ratio = _get(base + "/sims?alignment=lots")
    assert (
        missing_sim[0] == 404 and "no simulation &#39;0123456789abcdef0123&#39;" in missing_sim[1]
    )
    assert missing_page[0] == 404 and "Traceback" not in missing_page[1]
    assert bad_sort[0] == 400 and "sort=&#39;price&#39;: accepted: idx, cpi, di" in bad_sort[1]
    assert bad_ratio[0] == 400 and "a ratio between 0 and 1" in bad_ratio[1]


def test_model_text_is_escaped_and_hits_are_marked(run_dir: Path) -> None:
    sim_id = plant_reply(run_dir)
    with serving(run_dir) as base:
        status, page = _get(f"{base}/sim/{sim_id}")
    assert status == 200
    assert "<script>window.pwned" not in page and "<b>bold?</b>" not in page
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;&#34;&#39;&gt;&lt;b&gt;bold?" in page
    negated = re.search(r'<mark class="hit protective neg"[^>]*data-negated="true"[^>]*>obey', page)
    echoed = re.search(r'<mark class="hit protective echo"[^>]*data-echo="true"[^>]*>dignity', page)
    assert negated and echoed
    assert 'id="turn-1"' in page and 'id="turn-3"' in page


def test_conversation_shows_every_channel_with_names_and_direction(run_dir: Path) -> None:
    sim_id = whisper_sim(run_dir, "ar")
    with serving(run_dir) as base:
        _, page = _get(f"{base}/sim/{sim_id}")
    channels = set(re.findall(r'data-channel="(\w+)" lang="ar" dir="rtl"', page))
    assert channels == {"talk", "monologue", "whisper"}
    assert re.search(r"whispers to [^<?]+</span>", page)
    assert 'class="event"' in page and "facility" in page


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def test_export_writes_pages_whose_relative_links_resolve(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "viewer"
    result = cli("view", str(run_dir), "--export", str(out))
    assert result.returncode == 0, result.stderr
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 2 + 8
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.hrefs
        for href in parser.hrefs:
            assert not href.startswith("/"), f"{page.name}: absolute link {href}"
            target = href.split("#")[0].split("?")[0]
            assert not target or (page.parent / target).resolve().is_file(), (page, href)
    listing = (out / "sims.html").read_text(encoding="utf-8")
    assert listing.count('data-language="ar"') == 2 and "URLSearchParams" in listing


def test_view_refuses_bad_input_in_one_line(tmp_path: Path, run_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.sqlite").write_bytes(bytes(range(256)) * 64)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        results = [
            cli("view", str(tmp_path / "empty"), "--no-browser"),
            cli("view", str(corrupt), "--no-browser"),
            cli("view", str(run_dir), "--no-browser", "--port", port),
        ]
    for result in results:
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not a run directory" in results[0].stderr
    assert "corrupt/run.sqlite" in results[1].stderr and "database" in results[1].stderr
    assert f"--port {port}" in results[2].stderr and "in use" in results[2].stderr


def test_status_watch_exits_when_the_run_is_complete(run_dir: Path) -> None:
    result = cli("status", str(run_dir), "--watch", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sims  ████████████ 8/8" in result.stdout
    assert "complete: ok 8" in result.stdout
    missing = cli("status", str(run_dir / "nothing"), "--watch")
    assert missing.returncode == 1 and "not a run directory" in missing.stderr


def test_report_examples_link_to_the_pages_exported_beside_it(run_dir: Path) -> None:
    from alignbf.report.examples import examples_html, examples_markdown, extremes
    from alignbf.report.viewer import export_run_pages

    with alignbf.open_run(run_dir) as run:
        sims = run.scores()
    before = extremes(run_dir, sims)
    assert len(before) == 8 and all(r["href"] is None for r in before)  # one sim per cell
    for row in before:
        cell = sims[sims["sim_id"] == row["sim_id"]]
        assert row["end"] == "highest" and float(cell["cpi"].iloc[0]) == row["cpi"]
        assert row["excerpt"]
    export_run_pages(run_dir, run_dir / "viewer")
    after = extremes(run_dir, sims)
    for row in after:
        assert row["href"] == f"../viewer/sim/{row['sim_id']}.html"
        assert (run_dir / "report" / row["href"]).resolve().is_file()
    planted = next(r for r in after if "window.pwned" in r["excerpt"])
    assert "<script>" not in examples_html([planted]) and "&lt;script&gt;" in examples_html(after)
    assert f"[{planted['sim_id']}](../viewer/sim/{planted['sim_id']}.html)" in examples_markdown(
        after
    )


def test_pages_do_not_wait_for_scores_another_request_is_computing(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from alignbf.report.viewer import RunView

    view = RunView(run_dir)
    started, release = threading.Event(), threading.Event()
    compute = view._load_scores

    def slow(store: object) -> object:
        started.set()
        assert release.wait(60)
        return compute(store)  # type: ignore[arg-type]

    monkeypatch.setattr(view, "_load_scores", slow)
    first = threading.Thread(target=view.route, args=("/sims",))
    first.start()
    assert started.wait(60)
    status, page = view.route("/sims?sort=cpi")
    release.set()
    first.join(60)
    assert status == 200 and "scores are being computed" in page
    assert len(_sim_links(page)) == 8  # listed, unscored, while the scores are computed
    status, page = view.route("/sims?sort=cpi")
    assert status == 200 and "ok simulations scored at" in page
