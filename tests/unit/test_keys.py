"""API keys come only from named environment variables and never show in text."""

from __future__ import annotations

import base64
import logging

import pytest

from alignbf.errors import EndpointError
from alignbf.transport.keys import ScrubFilter, read_key, scrub


def test_missing_or_empty_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIGNBF_TEST_KEY", raising=False)
    with pytest.raises(EndpointError, match="ALIGNBF_TEST_KEY is not set"):
        read_key("ALIGNBF_TEST_KEY", "e")
    monkeypatch.setenv("ALIGNBF_TEST_KEY", "  \n")
    with pytest.raises(EndpointError, match="ALIGNBF_TEST_KEY is empty"):
        read_key("ALIGNBF_TEST_KEY", "e")
    assert read_key("ALIGNBF_TEST_KEY", "e", required=False) is None
    assert read_key(None, "e") is None


def test_key_is_stripped_masked_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNBF_TEST_KEY", "sk-unit-abcdef123456\n")
    key = read_key("ALIGNBF_TEST_KEY", "e")
    assert key is not None and key.get_secret_value() == "sk-unit-abcdef123456"
    assert "abcdef" not in repr(key) and "abcdef" not in str(key)
    encoded = base64.b64encode(b"Bearer sk-unit-abcdef123456").decode()
    text = scrub(f"echo: Bearer sk-unit-abcdef123456 / {encoded} / sk-unit-abcdef123456%0A")
    assert "abcdef" not in text and "sk-unit" not in text and encoded not in text


def test_log_records_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNBF_TEST_KEY", "sk-unit-log-987654")
    read_key("ALIGNBF_TEST_KEY", "e")
    record = logging.LogRecord(
        "httpx", logging.WARNING, "f", 1, "sent %s", ("sk-unit-log-987654",), None
    )
    assert ScrubFilter().filter(record) and "987654" not in record.getMessage()
