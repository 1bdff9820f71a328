import asyncio
import itertools

from alignbf.config.prompts import load_prompts
from alignbf.config.study import parse_study
from alignbf.engine.conversation import Conversation, parse_reply
from alignbf.engine.grid import expand
from alignbf.transport.backend import ChatRequest
from tests.fakes import ScriptedBackend

NAMES = {"margaret": 0, "david": 1, "sarah": 2}


def _spec(**conv):
    study = parse_study(
        {
            "name": "t",
            "agents": {"count": 3, "target": 3},
            "conversation": {"turns": 3, **conv},
            "factors": {"alignment_ratios": [0.5], "languages": ["en"], "models": ["m"]},
            "replicates": 1,
        },
        "test",
    )
    return expand(study)[0]


def _run(spec, backend):
    conv = Conversation(spec, load_prompts(spec.language))

    async def ask(request: ChatRequest, digest: str):
        return await backend.complete(request)

    return conv, asyncio.run(conv.run(ask))


def test_parse_tagged_channels_and_whisper():
    p = parse_reply(
        "[TALK] Hello all.\n[MONOLOGUE] I am scared.\n[WHISPER:David] Stay close.", "tagged", NAMES
    )
    assert (p.talk, p.monologue, p.whisper_to, p.whisper_text, p.format_ok) == (
        "Hello all.",
        "I am scared.",
        1,
        "Stay close.",
        True,
    )


def test_parse_ignored_format_becomes_flagged_talk():
    p = parse_reply("I just say something.", "tagged", NAMES)
    assert p.talk == "I just say something." and not p.format_ok and p.monologue == ""


def test_parse_unknown_whisper_recipient_is_talk_and_flagged():
    p = parse_reply("[TALK] a\n[WHISPER:Nobody] b", "tagged", NAMES)
    assert p.whisper_to is None and p.talk == "a b" and not p.format_ok


def test_parse_json_with_fence():
    body = '{"talk": "hi", "monologue": "hm", "whisper": {"to": "Sarah", "text": "psst"}}'
    text = f"```json\n{body}\n```"
    p = parse_reply(text, "json", NAMES)
    assert (p.talk, p.monologue, p.whisper_to, p.whisper_text, p.format_ok) == (
        "hi",
        "hm",
        2,
        "psst",
        True,
    )
    assert not parse_reply("not json", "json", NAMES).format_ok


def test_message_lists_are_append_only_and_visibility():
    backend = ScriptedBackend(
        lambda r: (
            f"[TALK] public {r.agent}.{r.turn}\n[MONOLOGUE] secret {r.agent}.{r.turn}"
            + ("\n[WHISPER:Sarah] whisper-to-sarah" if r.agent == 0 else "")
        )
    )
    spec = _spec()
    _, transcript = _run(spec, backend)
    by_agent: dict[int, list[ChatRequest]] = {}
    for r in backend.requests:
        by_agent.setdefault(r.agent, []).append(r)
    for reqs in by_agent.values():
        for before, after in itertools.pairwise(reqs):
            assert after.messages[: len(before.messages)] == before.messages
    # agent 1 at turn 2 heard agents 2 (turn 1) and 0 (turn 2), never a monologue of another
    seen = "\n".join(m["content"] for m in by_agent[1][1].messages if m["role"] == "user")
    assert "public 0.1" in seen and "public 2.1" in seen and "public 0.2" in seen
    assert "secret 0" not in seen and "whisper-to-sarah" not in seen
    sarah = "\n".join(m["content"] for m in by_agent[2][1].messages if m["role"] == "user")
    assert "whisper-to-sarah" in sarah
    assert transcript.status(0.5) == "ok"
    assert sum(1 for row in transcript.rows if row[2] == "event") == 3
    assert sum(1 for row in transcript.rows if row[2] == "whisper") == 3


def test_alignment_prefix_only_for_aligned_agents():
    backend = ScriptedBackend()
    spec = _spec()
    _run(spec, backend)
    prefix = load_prompts("en").alignment_prefix.strip()
    firsts = {r.agent: r.messages[0]["content"] for r in backend.requests}
    for agent, system in firsts.items():
        assert (prefix in system) == spec.aligned[agent]


def test_simultaneous_order_sees_only_previous_turn():
    backend = ScriptedBackend(lambda r: f"[TALK] said {r.agent}.{r.turn}\n[MONOLOGUE] x")
    _run(_spec(turn_order="simultaneous"), backend)
    turn2 = next(r for r in backend.requests if r.turn == 2 and r.agent == 2)
    last = turn2.messages[-1]["content"]
    assert "said 0.1" in last and "said 0.2" not in last


def test_too_many_format_failures_is_invalid_output():
    _, transcript = _run(_spec(), ScriptedBackend(lambda r: "no tags at all"))
    assert transcript.format_failures == transcript.replies == 9
    assert transcript.status(0.5) == "invalid_output"


def test_json_whisper_outside_the_group_is_a_counted_format_failure():
    # Thomas is the fourth resident of the English prompts: outside a group of three
    reply = '{"talk": "hello", "monologue": "hm", "whisper": {"to": "Thomas", "text": "psst"}}'
    conv, transcript = _run(_spec(channel_format="json"), ScriptedBackend(lambda r: reply))
    assert transcript.format_failures == transcript.replies == 9
    assert not [row for row in transcript.rows if row[2] == "whisper"]
    assert all(not agent.inbox for agent in conv.agents)
    assert "psst" not in {row[4] for row in transcript.rows}


def test_json_whisper_without_a_usable_recipient_is_a_format_failure():
    for whisper in ('{"to": 3, "text": "psst"}', '"to Sarah: psst"', '{"text": "psst"}'):
        p = parse_reply(f'{{"talk": "hi", "monologue": "", "whisper": {whisper}}}', "json", NAMES)
        assert p.whisper_to is None and not p.format_ok, whisper
    assert parse_reply('{"talk": "hi", "monologue": "", "whisper": null}', "json", NAMES).format_ok
