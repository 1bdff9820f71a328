"""API keys: read from the environment variable an endpoint names, and kept out of every output.

A key is read only from the variable named by ``api_key_env`` and held as a
``SecretStr``. Every key read is registered with ``scrub``, which removes it (raw,
base64, URL-encoded and JSON-escaped) from any text before that text reaches an
exception, the store, a log or the terminal. The ``httpx``/``httpcore`` loggers are
held at WARNING and filtered too.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.parse

from pydantic import SecretStr

from alignbf.errors import EndpointError

_FORMS: set[str] = set()
MASK = "**********"


def _forms(secret: str) -> set[str]:
    """The spellings of a secret that could appear in text."""
    forms = {
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"Bearer {secret}".encode()).decode(),
        urllib.parse.quote(secret, safe=""),
        json.dumps(secret)[1:-1],
    }
    return {f for f in forms if len(f) >= 4}


def register_secret(secret: str) -> None:
    """Have ``scrub`` remove ``secret`` (and its encodings) from all text from now on."""
    _FORMS.update(_forms(secret))


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by a mask."""
    for form in sorted(_FORMS, key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    return text


def read_key(env_var: str | None, endpoint: str, *, required: bool = True) -> SecretStr | None:
    """The key held in ``env_var``, or None for keyless endpoints.

    Args:
        env_var: The variable name from ``api_key_env`` (None: the endpoint needs no key).
        endpoint: Endpoint name, for the message.
        required: When False a missing variable gives None instead of an error.

    Raises:
        EndpointError: the variable is unset or empty (the message names it, never a value).
    """
    if env_var is None:
        return None
    value = os.environ.get(env_var, "").strip()
    if not value:
        if not required:
            return None
        state = "is empty" if env_var in os.environ else "is not set"
        raise EndpointError(
            f"endpoint {endpoint}: environment variable {env_var} {state}; "
            f"export the API key in {env_var} (keys are never read from files)"
        )
    register_secret(value)
    return SecretStr(value)


class ScrubFilter(logging.Filter):
    """A logging filter that removes registered secrets from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without secrets; never drops a record."""
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def quiet_http_loggers() -> None:
    """Hold the HTTP libraries' loggers at WARNING, behind the scrub filter."""
    for name in ("httpx", "httpcore", "openai"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, ScrubFilter) for f in logger.filters):
            logger.addFilter(ScrubFilter())
