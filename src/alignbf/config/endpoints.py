"""Named OpenAI-compatible endpoints (``configs/endpoints.yaml``).

An endpoint names where a model is served, the environment variable that holds
its key (never the key), its prices and its rate limits. Unknown prices are
``null`` and are shown as "unknown", never as $0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alignbf.config.study import Study, _describe, resolve_relative
from alignbf.config.urls import check_base_url
from alignbf.config.yamlfile import load_yaml
from alignbf.errors import ConfigError


class Endpoint(BaseModel):
    """One OpenAI-compatible endpoint serving one model."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    base_url: str
    """Base URL ending in /v1 (``{base_url}/chat/completions`` is called)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the key; null for keyless local servers."""
    model: str
    """Model id as this provider names it."""
    serves: str
    """The study-level model name this endpoint serves (e.g. llama-3.3-70b)."""
    price_input_per_mtok: float | None = Field(None, ge=0)
    """USD per million input tokens; null = unknown."""
    price_output_per_mtok: float | None = Field(None, ge=0)
    """USD per million output tokens; null = unknown."""
    price_cached_input_per_mtok: float | None = Field(None, ge=0)
    """USD per million input tokens read from the provider's prompt cache; null = the input
    price (no discount assumed)."""
    price_cache_write_per_mtok: float | None = Field(None, ge=0)
    """USD per million input tokens written to the prompt cache, for providers that report
    and charge them; null = the input price."""
    prompt_cache_key: bool | None = None
    """Send ``prompt_cache_key`` (one per simulation and agent) so that a provider routes an
    agent's growing prompt to the same cache; null = on for api.openai.com, off elsewhere.
    It does not change what the model sees, so it is neither in the endpoint's id nor in
    any cache key."""
    max_connections: int = Field(16, ge=1, le=1024)
    """Simultaneous requests to this endpoint."""
    requests_per_minute: int | None = Field(None, ge=1)
    """Request rate limit; null = none."""
    tokens_per_minute: int | None = Field(None, ge=1)
    """Token rate limit (input + output); null = none."""
    supports_seed: bool = True
    """Whether the API ``seed`` parameter is sent."""
    context_window: int | None = Field(None, ge=1)
    """Context length in tokens, for the pre-flight prompt size check; null = unknown."""
    structured_output: Literal["off", "json_object", "json_schema"] = "off"
    """For the JSON channel format: send the reply schema as ``response_format``
    (``json_schema``: OpenAI, vLLM, Groq, Together; ``json_object``: llama.cpp, with the
    schema attached). It changes what the model can write, so it is part of the endpoint's
    id and of every cache key."""
    timeout_s: float = Field(120.0, gt=0)
    """Read timeout per attempt, seconds (null or 0 would mean no timeout and is refused)."""
    batch: bool = False
    """The endpoint offers the OpenAI-format batch API (``/files``, ``/batches``);
    ``alignbf run --batch`` then sends its calls in batch jobs."""
    batch_discount: float = Field(0.5, ge=0, lt=1)
    """Share of the interactive price a batch call saves (0.5: batch calls cost half)."""
    batch_max_requests: int = Field(50000, ge=1, le=50000)
    """Most requests in one batch job (the provider's limit)."""
    notes: str = ""
    """Free text: where the price comes from, quirks."""

    @field_validator("structured_output", mode="before")
    @classmethod
    def _off(cls, v: object) -> object:
        # YAML 1.1 reads an unquoted `off` as false
        return "off" if v is False else v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_base_url(v)

    @property
    def priced(self) -> bool:
        """True when both prices are known."""
        return self.price_input_per_mtok is not None and self.price_output_per_mtok is not None

    @property
    def sends_prompt_cache_key(self) -> bool:
        """Whether requests carry ``prompt_cache_key`` (the flag, or its default by host)."""
        if self.prompt_cache_key is not None:
            return self.prompt_cache_key
        return (urlsplit(self.base_url).hostname or "") == "api.openai.com"

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """USD for a call, or None when a price is unknown.

        ``input_tokens`` counts every prompt token, cached and written ones included (as
        OpenAI-compatible ``usage.prompt_tokens`` does); those two are priced at their own
        rates (the input price when unset), the rest at the input price.
        """
        price_in, price_out = self.price_input_per_mtok, self.price_output_per_mtok
        if price_in is None or price_out is None:
            return None
        cached = min(cached_tokens or 0, input_tokens)
        written = min(cache_write_tokens or 0, input_tokens - cached)
        price_cached = self.price_cached_input_per_mtok
        price_write = self.price_cache_write_per_mtok
        return (
            (input_tokens - cached - written) * price_in
            + cached * (price_in if price_cached is None else price_cached)
            + written * (price_in if price_write is None else price_write)
            + output_tokens * price_out
        ) / 1e6

    def batch_cost(
        self, input_tokens: int, output_tokens: int, cached_tokens: int | None = None
    ) -> float | None:
        """USD for a call sent in a batch job: the interactive cost less ``batch_discount``."""
        cost = self.cost(input_tokens, output_tokens, cached_tokens)
        return None if cost is None else cost * (1.0 - self.batch_discount)


class EndpointsFile(BaseModel):
    """The whole endpoints file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoints: dict[str, Endpoint]


def load_endpoints(path: Path) -> dict[str, Endpoint]:
    """Load an endpoints file; ``api_key`` written inline is refused without echoing it."""
    data = load_yaml(path)
    for name, entry in (data.get("endpoints") or {}).items():
        if isinstance(entry, dict) and "api_key" in entry:
            raise ConfigError(
                f"{path}: endpoints.{name}.api_key: keys do not belong in files; "
                "name an environment variable with api_key_env"
            )
    try:
        return EndpointsFile.model_validate(data).endpoints
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def check_endpoints(study: Study, config_path: Path) -> dict[str, Endpoint]:
    """The endpoints a study maps its models to, checked against ``endpoints.yaml``."""
    if not study.endpoints:
        return {}
    path = resolve_relative(config_path, study.endpoints_file, "configs")
    endpoints = load_endpoints(path)
    for model, name in study.endpoints.items():
        if name not in endpoints:
            raise ConfigError(
                f"{config_path}: endpoints.{model}: unknown endpoint {name!r}; "
                f"accepted: {', '.join(endpoints)}"
            )
        if endpoints[name].serves != model:
            raise ConfigError(
                f"{config_path}: endpoints.{model}: endpoint {name!r} serves "
                f"{endpoints[name].serves!r}, not {model!r}"
            )
    for model in study.factors.models:
        if model not in study.endpoints:
            raise ConfigError(f"{config_path}: endpoints: no endpoint serves model {model!r}")
    return endpoints
