"""An emulated provider prompt cache for the loopback server: block-hashed prefixes, LRU.

A prompt is read as one text (each message's role and content, in order) and cut into
blocks of ``BLOCK_TOKENS`` estimated tokens (four characters each, as the server counts
prompt tokens). Block ``i`` is keyed by a hash chained over blocks ``0..i``, so a key
names a whole prefix, as in vLLM's automatic prefix caching. A request is served from
the cache for its longest run of leading blocks already stored; then every full block of
its prompt is stored (or refreshed) and the least recently used blocks are evicted while
the cache holds more than its capacity. A trailing partial block is never cached. The
result depends only on the order of the requests, never on timing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

BLOCK_TOKENS = 64
"""Tokens per cache block."""
CHARS_PER_TOKEN = 4
"""The loopback server's token estimate."""


def prompt_text(messages: Iterable[dict[str, str]]) -> str:
    """The text the cache sees: role and content of every message, in order."""
    return "".join(f"\x1e{m.get('role', '')}\x1f{m.get('content') or ''}" for m in messages)


class PrefixCache:
    """A bounded LRU of prompt-prefix blocks; ``capacity_tokens`` 0 turns it off."""

    def __init__(self, capacity_tokens: int, block_tokens: int = BLOCK_TOKENS) -> None:
        if capacity_tokens < 0 or block_tokens < 1:
            raise ValueError("capacity and block size must be positive")
        self.capacity_blocks = capacity_tokens // block_tokens
        self.block_tokens = block_tokens
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self.evicted = 0
        """Blocks dropped to stay within the capacity, so far."""

    @property
    def enabled(self) -> bool:
        """False when the capacity holds no block."""
        return self.capacity_blocks > 0

    def __len__(self) -> int:
        return len(self._blocks)

    def _keys(self, text: str) -> list[bytes]:
        size = self.block_tokens * CHARS_PER_TOKEN
        keys, chain = [], b""
        for start in range(0, len(text) - size + 1, size):
            chain = hashlib.blake2b(
                chain + text[start : start + size].encode("utf-8", "surrogatepass"),
                digest_size=16,
            ).digest()
            keys.append(chain)
        return keys

    def lookup_and_store(self, messages: Iterable[dict[str, str]]) -> int:
        """Tokens of this prompt found cached (whole leading blocks); then cache its blocks."""
        if not self.enabled:
            return 0
        keys = self._keys(prompt_text(messages))
        hits = 0
        for key in keys:
            if key not in self._blocks:
                break
            hits += 1
        for key in keys:
            self._blocks[key] = None
            self._blocks.move_to_end(key)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
            self.evicted += 1
        return hits * self.block_tokens
