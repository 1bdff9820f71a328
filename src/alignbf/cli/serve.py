"""``alignbf serve-synthetic``: the synthetic model behind a loopback OpenAI-compatible API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def serve_synthetic(
    port: Annotated[int, typer.Option(min=0, help="Port (0 picks a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(min=0, help="Delay before each answer.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Share of attempts given a fault.")] = 0.0,
    fault_seed: Annotated[int, typer.Option(help="Seed of the fault schedule.")] = 0,
    fault_kinds: Annotated[
        str | None, typer.Option(help="Comma list: transient kinds to draw, permanent to force.")
    ] = None,
    world: Annotated[str, typer.Option(help="Synthetic world file or name.")] = "paper",
    ledger: Annotated[
        Path | None, typer.Option(help="Also append the ledger here (JSONL).")
    ] = None,
    stall_s: Annotated[float, typer.Option(min=0, help="How long a stall fault lasts.")] = 30.0,
    storm_s: Annotated[
        float, typer.Option(min=0, help="Answer every chat request 429 for this long.")
    ] = 0.0,
    storm_at_s: Annotated[
        float, typer.Option(min=0, help="When the storm starts, after the first chat request.")
    ] = 0.0,
    storm_retry_after_s: Annotated[
        int, typer.Option(min=0, help="Retry-After of the storm's 429s.")
    ] = 2,
    prefix_cache_tokens: Annotated[
        int, typer.Option(min=0, help="Emulated prompt cache size in tokens (0 = off).")
    ] = 0,
    reject_prompt_cache_key: Annotated[
        bool, typer.Option(help="Answer 400 to requests that carry prompt_cache_key.")
    ] = False,
    judge_error_rate: Annotated[
        float | None,
        typer.Option(help="Share of category labels the judge flips (default: the world's)."),
    ] = None,
    content_filter_rate: Annotated[
        float, typer.Option(help="Share of requests answered finish_reason content_filter.")
    ] = 0.0,
    reject_response_format: Annotated[
        str | None, typer.Option(help="Comma list of response_format types to answer 400.")
    ] = None,
    context_tokens: Annotated[
        int,
        typer.Option(
            min=0,
            help="Context window in tokens (0 = none): a longer prompt plus max_tokens "
            "is answered 400 context_length_exceeded.",
        ),
    ] = 0,
    batch_api: Annotated[bool, typer.Option(help="Serve the batch API (/v1/batches).")] = True,
    batch_expire: Annotated[
        str | None, typer.Option(help="Comma list of batch job numbers that expire.")
    ] = None,
    batch_partial: Annotated[
        str | None, typer.Option(help="Comma list of batch job numbers missing output lines.")
    ] = None,
    batch_line_fail_rate: Annotated[
        float, typer.Option(help="Share of batch lines answered with a 500 line.")
    ] = 0.0,
    batch_slow_polls: Annotated[
        int, typer.Option(min=0, help="Polls a batch job stays in_progress.")
    ] = 0,
    batch_stray_lines: Annotated[
        bool, typer.Option(help="Add an output line with an unknown custom_id to every job.")
    ] = False,
    quota_requests: Annotated[
        int,
        typer.Option(
            min=0,
            help="Chat requests allowed per quota window (0 = none); answers "
            "carry x-ratelimit-remaining-* headers, 429 past the quota.",
        ),
    ] = 0,
    quota_window_s: Annotated[
        float, typer.Option(min=0.001, help="Length of a quota window in seconds.")
    ] = 1.0,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (and --tls-key).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The PEM key of --tls-cert.")] = None,
) -> None:
    """Serve the synthetic model as an OpenAI-compatible API, with faults (tests, benchmarks)."""
    from contextlib import suppress

    from alignbf.testing.answers import parse_response_formats
    from alignbf.testing.batchapi import batch_faults
    from alignbf.testing.faults import parse_fault_kinds
    from alignbf.testing.server import ServerOptions, serve

    def ready(url: str) -> None:
        typer.echo(f"listening on {url}")
        sys.stdout.flush()

    options = ServerOptions(
        host=host,
        port=port,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        fault_seed=fault_seed,
        fault_kinds=parse_fault_kinds(fault_kinds),
        world=world,
        ledger=ledger,
        stall_s=stall_s,
        storm_s=storm_s,
        storm_at_s=storm_at_s,
        storm_retry_after_s=storm_retry_after_s,
        prefix_cache_tokens=prefix_cache_tokens,
        reject_prompt_cache_key=reject_prompt_cache_key,
        judge_error_rate=judge_error_rate,
        content_filter_rate=content_filter_rate,
        reject_response_format=parse_response_formats(reject_response_format),
        context_tokens=context_tokens,
        quota_requests=quota_requests,
        quota_window_s=quota_window_s,
        batch_api=batch_api,
        batch_faults=batch_faults(
            batch_expire,
            batch_partial,
            batch_line_fail_rate,
            batch_slow_polls,
            batch_stray_lines,
            fault_seed,
        ),
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    with suppress(KeyboardInterrupt):
        serve(options, ready)
