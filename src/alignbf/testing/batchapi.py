"""The OpenAI-format batch API of the loopback server, with batch faults and a ledger.

Routes (``server.py`` hands them over): ``POST /v1/files`` (multipart, ``purpose=batch``),
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``GET /v1/batches`` (newest first, ``limit`` and ``after``) and ``GET /_batches``, the
ledger: every upload and every job with its lines (custom_id, fingerprint of the body,
outcome, billed tokens). A line is ``queued`` from the job's creation (a created job is
paid for whether or not anyone polls it), then ``answered``, ``failed`` or
``dropped``. A job stays ``in_progress`` for ``slow_polls`` polls, then the synthetic
model answers each line, as the chat route would answer the same body.

Faults, by job number (1 = the first job created): ``expire`` jobs end ``expired``
without output; ``partial`` jobs complete with the second half of their lines missing
from the output file. ``line_fail_rate`` answers that share of lines with a 500 line,
drawn from ``hash(seed, fingerprint, attempt)``, at most two in a row per body.
``stray_lines`` adds to every output a line whose custom_id was never submitted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from alignbf.errors import ConfigError

Answer = Callable[[dict[str, Any]], dict[str, Any]]
"""The chat route's answer to a request body: the chat.completion payload."""
MAX_FAILS_IN_A_ROW = 2


@dataclass(frozen=True)
class BatchFaults:
    """Batch fault settings of ``alignbf serve-synthetic``."""

    expire: tuple[int, ...] = ()
    partial: tuple[int, ...] = ()
    line_fail_rate: float = 0.0
    slow_polls: int = 0
    stray_lines: bool = False
    seed: int = 0


@dataclass
class _Job:
    number: int
    id: str
    input_file_id: str
    created_at: float
    status: str = "validating"
    polls: int = 0
    output_file_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None

    def view(self) -> dict[str, Any]:
        counts = {"total": len(self.lines), "completed": 0, "failed": 0}
        for line in self.lines:
            if line["outcome"] == "answered":
                counts["completed"] += 1
            elif line["outcome"] == "failed":
                counts["failed"] += 1
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": None,
            "created_at": int(self.created_at),
            "request_counts": counts,
        }


class BatchAPI:
    """Files and batch jobs held in memory, answered by the synthetic model."""

    def __init__(self, answer: Answer, faults: BatchFaults) -> None:
        self.answer, self.faults = answer, faults
        self.files: dict[str, bytes] = {}
        self.uploads: list[dict[str, Any]] = []
        self.jobs: dict[str, _Job] = {}
        self.fails: dict[str, int] = {}
        self.attempts: dict[str, int] = {}

    def route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        """``(status, JSON-able or bytes)`` for a batch route, or None for another path."""
        path, _, query = target.partition("?")
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/_batches":
            return 200, {"uploads": self.uploads, "jobs": [j.__dict__ for j in self._ordered()]}
        if parts[:2] == ["v1", "files"]:
            if method == "POST" and len(parts) == 2:
                return self._upload(headers.get("content-type", ""), body)
            if method == "GET" and len(parts) == 4 and parts[3] == "content":
                content = self.files.get(parts[2])
                return (200, content) if content is not None else _missing("file", parts[2])
            return None
        if parts[:2] != ["v1", "batches"]:
            return None
        if method == "POST" and len(parts) == 2:
            return self._create(body)
        if method == "GET" and len(parts) == 2:
            return 200, self._list(parse_qs(query))
        if method == "GET" and len(parts) == 3:
            job = self.jobs.get(parts[2])
            return (200, self._poll(job).view()) if job else _missing("batch", parts[2])
        return None

    def _ordered(self) -> list[_Job]:
        return sorted(self.jobs.values(), key=lambda j: j.number)

    def _upload(self, content_type: str, body: bytes) -> tuple[int, Any]:
        fields = parse_multipart(content_type, body)
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return 400, _error("a multipart body with purpose=batch and a file is required")
        file_id = f"file-{len(self.files) + 1:06d}"
        self.files[file_id] = fields["file"]
        self.uploads.append({"id": file_id, "bytes": len(fields["file"]), "at": time.time()})
        return 200, {"id": file_id, "object": "file", "purpose": "batch"}

    def _create(self, body: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(body)
            file_id = str(request["input_file_id"])
        except (ValueError, KeyError, TypeError):
            return 400, _error("input_file_id is required")
        if file_id not in self.files:
            return _missing("file", file_id)
        number = len(self.jobs) + 1
        job = _Job(number, f"batch_{number:06d}", file_id, time.time())
        job.lines = [_line_entry(line, "queued") for line in self._input(job)]
        self.jobs[job.id] = job
        return 200, job.view()

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        newest = list(reversed(self._ordered()))
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [j.id for j in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        page = newest[:limit]
        return {
            "object": "list",
            "data": [j.view() for j in page],
            "has_more": len(newest) > limit,
            "last_id": page[-1].id if page else None,
        }

    def _poll(self, job: _Job) -> _Job:
        if job.status in ("completed", "expired", "failed", "cancelled"):
            return job
        job.polls += 1
        if job.polls <= self.faults.slow_polls:
            job.status = "in_progress"
            return job
        if job.number in self.faults.expire:
            job.status, job.fault = "expired", "expired"
            for entry in job.lines:
                entry["outcome"] = "dropped"
            return job
        self._run(job)
        return job

    def _input(self, job: _Job) -> list[dict[str, Any]]:
        lines = []
        for raw in self.files[job.input_file_id].splitlines():
            if raw.strip():
                lines.append(json.loads(raw))
        return lines

    def _run(self, job: _Job) -> None:
        lines = self._input(job)
        keep = len(lines) if job.number not in self.faults.partial else len(lines) // 2
        job.fault = "partial" if keep < len(lines) else None
        out = []
        for index, (line, entry) in enumerate(zip(lines, job.lines, strict=True)):
            if index >= keep:
                entry["outcome"] = "dropped"
                continue
            out.append(self._answer_line(line, index, entry))
        if self.faults.stray_lines:
            out.append({"id": "batch_req_stray", "custom_id": "stray-never-submitted",
                        "response": {"status_code": 200, "body": {}}, "error": None})  # fmt: skip
        file_id = f"file-{len(self.files) + 1:06d}"
        self.files[file_id] = "".join(
            json.dumps(o, ensure_ascii=False) + "\n" for o in out
        ).encode()
        job.output_file_id, job.status = file_id, "completed"

    def _answer_line(self, line: dict[str, Any], index: int, entry: dict[str, Any]) -> Any:
        """The output line answering ``line``; its ledger ``entry`` gets the outcome."""
        body = line.get("body") or {}
        fp = _fingerprint(body)
        self.attempts[fp] = attempt = self.attempts.get(fp, 0) + 1
        entry["outcome"], entry["attempt_no"] = "answered", attempt
        fails = self.fails.get(fp, 0)
        if fails < MAX_FAILS_IN_A_ROW and _draw(self.faults.seed, fp, attempt) < (
            self.faults.line_fail_rate
        ):
            self.fails[fp] = fails + 1
            entry["outcome"] = "failed"
            error = {"error": {"message": "The server had an error", "type": "server_error"}}
            response = {"status_code": 500, "body": error}
        else:
            self.fails[fp] = 0
            payload = self.answer(body)
            entry["billed_tokens"] = payload["usage"]["total_tokens"]
            response = {"status_code": 200, "body": payload}
        return {"id": f"batch_req_{index}", "custom_id": line.get("custom_id"),
                "response": response, "error": None}  # fmt: skip


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named parts of a ``multipart/form-data`` body (name -> content)."""
    marker = "boundary="
    if marker not in content_type:
        return {}
    boundary = content_type.split(marker, 1)[1].split(";")[0].strip().strip('"').encode()
    fields: dict[str, bytes] = {}
    for part in body.split(b"--" + boundary):
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        text = head.decode("latin-1")
        if 'name="' not in text:
            continue
        name = text.split('name="', 1)[1].split('"', 1)[0]
        fields[name] = content.removesuffix(b"\r\n")
    return fields


def _line_entry(line: dict[str, Any], outcome: str) -> dict[str, Any]:
    return {
        "custom_id": line.get("custom_id"),
        "fingerprint": _fingerprint(line.get("body") or {}),
        "outcome": outcome,
        "billed_tokens": 0,
    }


def _fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _draw(seed: int, fp: str, attempt: int) -> float:
    digest = hashlib.sha256(f"{seed}|batch_line|{fp}|{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def _missing(what: str, name: str) -> tuple[int, Any]:
    return 404, _error(f"No such {what}: {name}")


def parse_jobs(option: str, text: str | None) -> tuple[int, ...]:
    """``--batch-expire 1,3`` as job numbers, or one ``ConfigError`` line."""
    numbers = []
    for token in (text or "").split(","):
        token = token.strip()
        if token:
            if not token.isdigit() or int(token) < 1:
                raise ConfigError(f"{option} {text!r}: expected job numbers from 1, e.g. 1,3")
            numbers.append(int(token))
    return tuple(numbers)


def batch_faults(
    expire: str | None,
    partial: str | None,
    line_fail_rate: float,
    slow_polls: int,
    stray_lines: bool,
    seed: int,
) -> BatchFaults:
    """The batch faults of ``serve-synthetic``'s options, checked (one ``ConfigError`` line)."""
    if not 0.0 <= line_fail_rate <= 1.0:
        raise ConfigError(f"--batch-line-fail-rate {line_fail_rate}: must be between 0 and 1")
    return BatchFaults(
        expire=parse_jobs("--batch-expire", expire),
        partial=parse_jobs("--batch-partial", partial),
        line_fail_rate=line_fail_rate,
        slow_polls=slow_polls,
        stray_lines=stray_lines,
        seed=seed,
    )
