"""``alignbf view``: a local, read-only web viewer of a run, and its static export.

Three pages: the run (one row per cell: language x alignment x individuation x model,
with status counts and mean CPI and DI), the simulation list (filtered and sorted by
query-string parameters, so a URL is a deep link) and one conversation per simulation
(``/sim/<id>``, an anchor per turn: ``#turn-3``). Every page opens the store read-only
per request, so a run going on in another process shows its progress on reload.

Scores are the stored ones while they match the transcripts (``alignbf score``), else
computed once in memory; either way they are kept, keyed by the store's state (count,
finish times and statuses of the simulations), and computed again only when a
simulation finished since, at most every ``rescore_s`` seconds.

The export writes the same pages as files (``index.html``, ``sims.html``,
``sim/<id>.html``) with relative links; the list page filters and sorts in the browser
from the same query-string parameters (a small script), so its links work from disk.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2

from alignbf.config.prompts import load_prompts
from alignbf.config.study import Study
from alignbf.errors import AlignbfError, AnalysisError
from alignbf.report.transcript import RTL, Highlighter, agents_of, build_turns
from alignbf.store import reader
from alignbf.store.store import Store

SORT_KEYS = (
    "idx", "cpi", "di", "z_monologue_ratio", "z_coercive", "z_protective", "monologue_ratio",
    "coercive_rate", "protective_rate", "conformity_rate", "individuation_rate", "echo_share",
)  # fmt: skip
"""Columns the simulation list sorts by (``sort=``); scores sort descending by default."""
LIST_COLUMNS = (
    ("cpi", "CPI", 2), ("di", "DI", 2), ("z_monologue_ratio", "z mono", 2),
    ("z_coercive", "z coer", 2), ("z_protective", "z prot", 2),
    ("monologue_ratio", "mono ratio", 3), ("coercive_rate", "coer /1k", 1),
    ("protective_rate", "prot /1k", 1),
)  # fmt: skip
"""Score columns of the simulation list: key, heading, decimals."""
FILTERS = ("language", "alignment", "individuation", "model", "status")
AGENT_COLUMNS = ("cpi", "di", "monologue_ratio", "coercive_rate", "protective_rate")
_FIELD = {"alignment": "alignment_ratio", "individuation": "individuation_ratio"}


class BadRequest(AlignbfError):
    """A query parameter the viewer cannot use (HTTP 400)."""


@dataclass
class Links:
    """URLs between pages: absolute paths when served, relative file names when exported."""

    static: bool = False
    root: str = "/"

    def home(self) -> str:
        return self.root + ("index.html" if self.static else "")

    def sims(self, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return self.root + ("sims.html" if self.static else "sims") + (f"?{query}" if query else "")

    def sim(self, sim_id: str, turn: int | None = None) -> str:
        page = f"sim/{quote(sim_id)}" + (".html" if self.static else "")
        return self.root + page + (f"#turn-{turn}" if turn is not None else "")


@dataclass
class _Scores:
    simulations: dict[str, dict[str, Any]]
    agents: dict[str, dict[int, dict[str, Any]]]
    note: str


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _fmt(value: Any, digits: int = 2) -> str:
    number = _number(value)
    if number is None:
        return "–"
    text = f"{number:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _ratio(value: Any) -> str:
    return f"{float(value):g}"


class RunView:
    """The pages of one run directory (thread-safe; one instance serves every request)."""

    def __init__(self, run_dir: Path, *, rescore_s: float = 30.0) -> None:
        self.run_dir = Path(run_dir)
        self.study_name = reader.check_run(self.run_dir)
        self.rescore_s = rescore_s
        self._lock = threading.Lock()
        self._scores: _Scores | None = None
        self._scored: tuple[tuple[Any, ...], float] | None = None
        self._computing = False
        self._study: Study | None = None
        self._highlighter: Highlighter | None = None
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("alignbf.report", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(num=_fmt, ratio=_ratio)
        self.env.globals.update(rtl=RTL)

    # -- data --------------------------------------------------------------------------
    def _study_of(self, store: Store) -> Study:
        if self._study is None:
            from alignbf.scoring.scores import study_of

            self._study = study_of(store)
            self._highlighter = Highlighter(self._study)
        return self._study

    def scores(self, store: Store) -> _Scores:
        """The run's scores, computed again only after the store changed.

        While one request computes them, the others get the previous scores (or none,
        with a note) instead of waiting: scoring a large run takes a while.
        """
        token = reader.state(store)
        with self._lock:
            fresh = self._scored is not None and (
                self._scored[0] == token or time.monotonic() - self._scored[1] < self.rescore_s
            )
            if self._scores is not None and fresh:
                return self._scores
            if self._computing:
                return self._scores or _Scores({}, {}, "scores are being computed; reload soon")
            self._computing = True
        try:
            found = self._load_scores(store)
        finally:
            with self._lock:
                self._computing = False
        with self._lock:
            self._scores, self._scored = found, (token, time.monotonic())
        return found

    def _load_scores(self, store: Store) -> _Scores:
        from alignbf.scoring.scores import compute_scores, stored_scores

        study = self._study_of(store)
        try:
            found = stored_scores(store)
            note = "stored scores (alignbf score)"
            if found is None:
                found = compute_scores(store, study)
                note = "scores computed by the viewer (not stored)"
        except AnalysisError as exc:
            return _Scores({}, {}, f"no scores: {exc}")
        # Plain dicts of the columns shown: a per-request lookup costs nothing, and
        # DataFrame.to_dict over every score column costs more than the page itself.
        frame = found.simulations
        columns = [c for c in SORT_KEYS if c in frame.columns]
        sims = {
            sim_id: dict(zip(columns, values, strict=True))
            for sim_id, values in zip(
                frame["sim_id"], frame[columns].astype(float).to_numpy().tolist(), strict=True
            )
        }
        agents: dict[str, dict[int, dict[str, Any]]] = {}
        frame = found.agents
        values = frame[list(AGENT_COLUMNS)].astype(float).to_numpy().tolist()
        for sim_id, agent, row in zip(frame["sim_id"], frame["agent"], values, strict=True):
            agents.setdefault(sim_id, {})[int(agent)] = dict(zip(AGENT_COLUMNS, row, strict=True))
        scored = f"{len(sims)} ok simulations scored at {time.strftime('%H:%M:%S')}"
        return _Scores(sims, agents, f"{note}; {scored}; z-scope {study.scoring.zscore_scope}")

    def warm(self) -> None:
        """Load the scores and each language's lexicon before the first request asks."""
        with reader.reading(self.run_dir) as store:
            self.scores(store)
            languages = {s["language"] for s in reader.simulations(store)}
        assert self._highlighter is not None
        for language in sorted(languages):
            # The matcher compiles its term lookup on the first hit: give it some.
            sample = "\n".join(load_prompts(language).instruction_texts())
            self._highlighter.segments(sample, language, "talk")
        for name in ("run.html", "sims.html", "sim.html", "404.html", "error.html"):
            self.env.get_template(name)
        # Scoring leaves much garbage behind; collect it now rather than in the middle of
        # the first request that happens to trigger a full collection.
        gc.collect()

    # -- pages -------------------------------------------------------------------------
    def _page(self, template: str, links: Links, **context: Any) -> str:
        return self.env.get_template(template).render(
            links=links, study=self.study_name, run_dir=str(self.run_dir), **context
        )

    def run_page(self, links: Links) -> str:
        """The run: one row per cell with status counts and mean CPI and DI."""
        with reader.reading(self.run_dir) as store:
            sims = reader.simulations(store)
            scores = self.scores(store)
            backend = store.get("backend") or "?"
        cells: dict[tuple[Any, ...], dict[str, Any]] = {}
        statuses: dict[str, int] = {}
        for s in sims:
            key = (s["language"], s["alignment_ratio"], s["individuation_ratio"], s["model"])
            cell = cells.setdefault(key, {"key": key, "counts": {}, "cpi": [], "di": []})
            cell["counts"][s["status"]] = cell["counts"].get(s["status"], 0) + 1
            statuses[s["status"]] = statuses.get(s["status"], 0) + 1
            score = scores.simulations.get(s["sim_id"])
            for name in ("cpi", "di"):
                value = _number(score.get(name)) if score else None
                if value is not None:
                    cell[name].append(value)
        for cell in cells.values():
            for name in ("cpi", "di"):
                values = cell.pop(name)
                cell[f"mean_{name}"] = sum(values) / len(values) if values else None
        return self._page(
            "run.html",
            links,
            backend=backend,
            cells=list(cells.values()),
            statuses=sorted(statuses.items()),
            total=len(sims),
            note=scores.note,
        )

    def list_page(self, links: Links, query: dict[str, str]) -> str:
        """The simulations, filtered and sorted as ``query`` asks."""
        sort = query.get("sort", "idx")
        if sort not in SORT_KEYS:
            raise BadRequest(f"sort={sort!r}: accepted: {', '.join(SORT_KEYS)}")
        order = query.get("order", "asc" if sort == "idx" else "desc")
        if order not in ("asc", "desc"):
            raise BadRequest(f"order={order!r}: accepted: asc, desc")
        with reader.reading(self.run_dir) as store:
            sims = reader.simulations(store)
            scores = self.scores(store)
        options = {f: sorted({str(_value(s, f)) for s in sims}) for f in FILTERS}
        wanted = {f: query[f] for f in FILTERS if query.get(f)}
        for name, value in wanted.items():
            if name in ("alignment", "individuation") and _number(value) is None:
                raise BadRequest(f"{name}={value!r}: a ratio between 0 and 1 is expected")
        rows = []
        for s in sims:
            if links.static or self._matches(s, wanted):
                score = scores.simulations.get(s["sim_id"], {})
                rows.append({**score, "idx": s["idx"], "sim": s})
        if not links.static:
            rows = _sorted(rows, sort, order)
        for r in rows:
            sim = r["sim"]
            r["href"] = links.sim(sim["sim_id"])
            r["ratios"] = (_ratio(sim["alignment_ratio"]), _ratio(sim["individuation_ratio"]))
            r["cells"] = [_fmt(r.get(c), d) for c, _, d in LIST_COLUMNS]
        return self._page(
            "sims.html",
            links,
            rows=rows,
            options=options,
            wanted=wanted,
            sort=sort,
            order=order,
            sort_keys=SORT_KEYS,
            filters=FILTERS,
            note=scores.note,
            columns=LIST_COLUMNS,
            shown=sum(self._matches(r["sim"], wanted) for r in rows),
            total=len(sims),
        )

    @staticmethod
    def _matches(sim: dict[str, Any], wanted: dict[str, str]) -> bool:
        for name, value in wanted.items():
            have = _value(sim, name)
            if name in ("alignment", "individuation"):
                if not math.isclose(float(have), float(value)):
                    return False
            elif str(have) != value:
                return False
        return True

    def sim_page(self, links: Links, sim_id: str) -> str | None:
        """One conversation, or None when ``sim_id`` is unknown."""
        with reader.reading(self.run_dir) as store:
            sim = reader.simulation(store, sim_id)
            if sim is None:
                return None
            rows = reader.messages(store, sim_id)
            scores = self.scores(store)
            study = self._study_of(store)
        assert self._highlighter is not None
        spec = sim["spec"]
        agents = agents_of(spec, scores.agents.get(sim_id, {}))
        turns = build_turns(rows, agents, spec["language"], self._highlighter)
        return self._page(
            "sim.html",
            links,
            sim=sim,
            score=scores.simulations.get(sim_id, {}),
            agents=agents,
            turns=turns,
            agent_columns=AGENT_COLUMNS,
            hit_channels=list(study.scoring.hit_channels),
            note=scores.note,
        )

    def not_found(self, links: Links, what: str) -> str:
        """The 404 page."""
        return self._page("404.html", links, what=what)

    def error_page(self, links: Links, message: str) -> str:
        """A one-line error as a page (bad query, unreadable store)."""
        return self._page("error.html", links, message=message)

    def route(self, target: str) -> tuple[int, str]:
        """``(HTTP status, HTML)`` for a request target such as ``/sims?language=ar``."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        links = Links()
        path = parts.path.rstrip("/") or "/"
        try:
            if path in ("/", "/index.html"):
                return 200, self.run_page(links)
            if path in ("/sims", "/sims.html"):
                return 200, self.list_page(links, query)
            if path.startswith("/sim/"):
                sim_id = path.removeprefix("/sim/").removesuffix(".html")
                page = self.sim_page(links, sim_id)
                if page is not None:
                    return 200, page
                return 404, self.not_found(links, f"simulation {sim_id!r}")
        except BadRequest as exc:
            return 400, self.error_page(links, str(exc))
        except AlignbfError as exc:
            return 500, self.error_page(links, str(exc))
        return 404, self.not_found(links, f"page {parts.path!r}")


def _value(sim: dict[str, Any], name: str) -> Any:
    value = sim[_FIELD.get(name, name)]
    return _ratio(value) if name in _FIELD else value


def _sorted(rows: list[dict[str, Any]], key: str, order: str) -> list[dict[str, Any]]:
    """Rows by ``key``; rows without a value (not scored) go last either way."""
    present = [r for r in rows if _number(r.get(key)) is not None]
    missing = [r for r in rows if _number(r.get(key)) is None]
    present.sort(key=lambda r: float(r[key]), reverse=order == "desc")
    return present + missing


def make_server(view: RunView, port: int = 0) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (``port`` 0: a free one) serving ``view``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = view.route(self.path)
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise AlignbfError(f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror})") from None
    server.daemon_threads = True
    return server


def serve_run(run_dir: Path, port: int = 0, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the viewer of ``run_dir`` until interrupted; ``on_ready`` gets the URL."""
    view = RunView(run_dir)
    server = make_server(view, port)
    threading.Thread(target=view.warm, daemon=True).start()
    try:
        if on_ready is not None:
            on_ready(f"http://127.0.0.1:{server.server_address[1]}/")
        server.serve_forever()
    finally:
        server.server_close()


def export_run_pages(run_dir: Path, out: Path) -> list[Path]:
    """Write the viewer's pages as static HTML under ``out``; returns the files written."""
    view = RunView(run_dir)
    try:
        (out / "sim").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AlignbfError(f"{out}: cannot create the export directory ({exc.strerror})") from None
    top = Links(static=True, root="")
    pages = [(out / "index.html", view.run_page(top)), (out / "sims.html", view.list_page(top, {}))]
    with reader.reading(view.run_dir) as store:
        ids = [s["sim_id"] for s in reader.simulations(store)]
    below = Links(static=True, root="../")
    for sim_id in ids:
        page = view.sim_page(below, sim_id)
        assert page is not None
        pages.append((out / "sim" / f"{sim_id}.html", page))
    for path, text in pages:
        path.write_text(text, encoding="utf-8")
    return [path for path, _ in pages]
