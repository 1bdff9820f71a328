"""One simulation: the turn loop of a group conversation.

Each turn the facility system posts the scripted event; agents speak in the
configured order; each reply is parsed into talk, monologue and an optional
whisper. An agent sees its system prompt, the public record (talk), its own
earlier replies (so its own monologues) and whispers addressed to it. Its
message list only grows (unless a ``history_window`` is configured), so every
prompt extends the previous one and provider prefix caching applies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from alignbf.config.prompts import PromptSet, fill
from alignbf.engine.grid import SimSpec
from alignbf.transport.backend import ChatRequest, Completion

Ask = Callable[[ChatRequest, str], Awaitable[Completion]]
"""The runner's callable: (request, digest of its messages) -> completion."""

_TAG = re.compile(r"^[ \t]*\[(TALK|MONOLOGUE|WHISPER)(?:\s*:\s*([^\]\n]*))?\][ \t]*", re.M | re.I)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


@dataclass
class Parsed:
    """A reply split into channels."""

    talk: str
    monologue: str = ""
    whisper_to: int | None = None
    whisper_text: str = ""
    format_ok: bool = True


def _recipient(label: str, names: dict[str, int]) -> int | None:
    key = label.strip().casefold()
    if key in names:
        return names[key]
    first = key.split()[0] if key.split() else ""
    return names.get(first)


def _parse_tagged(text: str, names: dict[str, int]) -> Parsed:
    marks = list(_TAG.finditer(text))
    if not marks:
        return Parsed(talk=text.strip(), format_ok=False)
    out = Parsed(talk="", format_ok=not text[: marks[0].start()].strip())
    stray = text[: marks[0].start()].strip()
    talk = [stray] if stray else []
    mono = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end() : end].strip()
        kind = m.group(1).upper()
        if kind == "TALK":
            talk.append(body)
        elif kind == "MONOLOGUE":
            mono.append(body)
        elif out.whisper_to is None and (to := _recipient(m.group(2) or "", names)) is not None:
            out.whisper_to, out.whisper_text = to, body
        else:
            talk.append(body)
            out.format_ok = False
    out.talk = " ".join(t for t in talk if t)
    out.monologue = " ".join(t for t in mono if t)
    return out


def _parse_json(text: str, names: dict[str, int]) -> Parsed:
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    try:
        obj = json.loads(body[start : end + 1]) if start >= 0 else None
    except json.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("talk", ""), str):
        return Parsed(talk=text.strip(), format_ok=False)
    out = Parsed(talk=str(obj.get("talk", "")).strip(), monologue=str(obj.get("monologue", "")))
    whisper = obj.get("whisper")
    if isinstance(whisper, dict) and isinstance(whisper.get("to"), str):
        out.whisper_to = _recipient(whisper["to"], names)
        out.whisper_text = str(whisper.get("text", "")).strip()
        out.format_ok = out.whisper_to is not None
    elif whisper not in (None, {}, ""):
        # a whisper with no usable recipient is never stored as a whisper to nobody
        out.format_ok = False
    return out


def reply_schema(names: list[str]) -> dict[str, Any]:
    """JSON schema of a reply in the JSON channel format: talk and monologue, and an
    optional whisper whose recipient is one of the group's first names."""
    whisper = {
        "type": "object",
        "properties": {"to": {"type": "string", "enum": names}, "text": {"type": "string"}},
        "required": ["to", "text"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "talk": {"type": "string"},
            "monologue": {"type": "string"},
            "whisper": whisper,
        },
        "required": ["talk", "monologue"],
        "additionalProperties": False,
    }


def parse_reply(text: str, channel_format: str, names: dict[str, int]) -> Parsed:
    """Split a reply into channels; a reply that ignores the format becomes talk, flagged.

    Args:
        text: The model's reply.
        channel_format: ``tagged`` or ``json``.
        names: Casefolded call names (and full names) -> agent index.
    """
    if channel_format == "json":
        return _parse_json(text, names)
    return _parse_tagged(text, names)


def _first_error(tasks: list[asyncio.Task[Completion]]) -> BaseException:
    """The exception of the lowest-numbered agent whose task failed (not merely cancelled)."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            return error
    return RuntimeError("a simultaneous turn failed without an error")


@dataclass
class Transcript:
    """What a simulation produced: rows for the messages table and per-reply flags."""

    rows: list[tuple[int, int, str, int | None, str]] = field(default_factory=list)
    """(turn, agent, channel, recipient, text); agent -1 is the facility system."""
    format_failures: int = 0
    replies: int = 0

    def status(self, threshold: float) -> str:
        """``ok`` or ``invalid_output`` when too many replies ignored the format."""
        if self.replies and self.format_failures / self.replies > threshold:
            return "invalid_output"
        return "ok"


class _Agent:
    def __init__(self, system: str) -> None:
        self.messages: list[dict[str, str]] = []
        self.hasher = hashlib.sha256()
        self.seen = 0
        self.inbox: list[tuple[int, str]] = []
        self.append("system", system)

    def append(self, role: str, content: str) -> None:
        self.messages.append({"role": role, "content": content})
        blob = f"{role}\x00{content}".encode()
        self.hasher.update(len(blob).to_bytes(8, "big") + blob)


class Conversation:
    """The turn loop of one simulation."""

    def __init__(self, spec: SimSpec, prompts: PromptSet) -> None:
        self.spec, self.p = spec, prompts
        people = prompts.personas[: spec.n_agents]
        self.names = {p.call_name.casefold(): i for i, p in enumerate(people)}
        self.names.update({p.name.casefold(): i for i, p in enumerate(people)})
        self.schema = reply_schema([p.call_name for p in people])
        self.agents = [
            _Agent(
                prompts.system_prompt(
                    i,
                    spec.n_agents,
                    aligned=spec.aligned[i],
                    individuated=spec.individuated[i],
                    channel_format=spec.channel_format,
                )
            )
            for i in range(spec.n_agents)
        ]
        self.record: list[tuple[int, str]] = []
        self.out = Transcript()

    def _user_message(self, i: int, turn: int, event: str, upto: int) -> str:
        p, agent = self.p, self.agents[i]
        lines = [fill(p.turn_header, turn=turn, turns=self.spec.turns), f"{p.event_label}: {event}"]
        heard = self.record[agent.seen : upto]
        agent.seen = upto
        lines.append("")
        lines.append(p.record_label)
        if heard:
            lines.extend(f"{p.personas[who].call_name}: {said}" for who, said in heard)
        else:
            lines.append(p.no_record)
        for who, text in agent.inbox:
            lines.append(fill(p.whisper_label, speaker=p.personas[who].call_name) + " " + text)
        agent.inbox.clear()
        lines.append("")
        lines.append(fill(p.reply_prompt, name=p.personas[i].call_name))
        return "\n".join(lines)

    def _request(self, i: int, turn: int) -> ChatRequest:
        s = self.spec
        msgs = self.agents[i].messages
        if s.history_window is not None:
            msgs = msgs[:1] + msgs[1:][-(2 * s.history_window - 1) :]
        return ChatRequest(
            sim_id=s.sim_id,
            agent=i,
            turn=turn,
            model=s.model,
            messages=tuple(msgs),
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=s.seed,
            response_schema=self.schema if s.channel_format == "json" else None,
        )

    async def _speak(self, ask: Ask, i: int, turn: int, event: str, upto: int) -> Completion:
        agent = self.agents[i]
        agent.append("user", self._user_message(i, turn, event, upto))
        completion = await ask(self._request(i, turn), agent.hasher.hexdigest())
        agent.append("assistant", completion.text)
        return completion

    def _absorb(self, i: int, turn: int, completion: Completion) -> None:
        parsed = parse_reply(completion.text, self.spec.channel_format, self.names)
        self.out.replies += 1
        self.out.format_failures += not parsed.format_ok
        rows = self.out.rows
        rows.append((turn, i, "talk", None, parsed.talk))
        rows.append((turn, i, "monologue", None, parsed.monologue))
        if parsed.whisper_to is not None and parsed.whisper_to != i:
            rows.append((turn, i, "whisper", parsed.whisper_to, parsed.whisper_text))
            self.agents[parsed.whisper_to].inbox.append((i, parsed.whisper_text))
        if parsed.talk:
            self.record.append((i, parsed.talk))

    async def run(self, ask: Ask) -> Transcript:
        """Play every turn; raises whatever ``ask`` raises (the runner classifies it)."""
        for turn in range(1, self.spec.turns + 1):
            event = self.p.event(turn, self.spec.target)
            self.out.rows.append((turn, -1, "event", None, event))
            if self.spec.turn_order == "simultaneous":
                upto = len(self.record)
                tasks: list[asyncio.Task[Completion]] = []
                try:
                    async with asyncio.TaskGroup() as tg:
                        tasks = [
                            tg.create_task(self._speak(ask, i, turn, event, upto))
                            for i in range(self.spec.n_agents)
                        ]
                except* Exception:
                    # the error itself, as in sequential order (the first agent's that failed)
                    raise _first_error(tasks) from None
                for i, task in enumerate(tasks):
                    self._absorb(i, turn, task.result())
            else:
                for i in range(self.spec.n_agents):
                    completion = await self._speak(ask, i, turn, event, len(self.record))
                    self._absorb(i, turn, completion)
        return self.out
