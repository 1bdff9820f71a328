"""Endpoint base URLs: checked once when read, and never shown or stored with credentials.

``check_base_url`` refuses what the HTTP client could not use (no scheme, no host, a
port that is not a number from 1 to 65535, a broken IPv6 address) with a reason that
names the part at fault. ``redact_url`` removes the userinfo (``user:KEY@``) of a URL
and ``redact_urls`` of every URL inside a text: every URL alignbf stores (the endpoint
id of each call, ``manifest.json``) or prints (error lines) goes through one of them.
"""

from __future__ import annotations

import re
import urllib.parse

_USERINFO = re.compile(r"(?i)\b(https?://)[^\s/?#]*@")


def redact_url(url: str) -> str:
    """``url`` without its userinfo: ``http://u:KEY@host/v1`` -> ``http://host/v1``."""
    return _USERINFO.sub(r"\1", url)


def redact_urls(text: str) -> str:
    """``text`` with the userinfo of every ``http(s)://`` URL in it removed."""
    return _USERINFO.sub(r"\1", text)


def url_password(url: str) -> str | None:
    """The password (or lone user name) in a URL's userinfo, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    secret = parts.password or parts.username
    return urllib.parse.unquote(secret) if secret else None


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, once it is an absolute http(s) URL with a host.

    Raises:
        ValueError: what is wrong, without the URL's credentials.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ValueError("is not a valid URL (unbalanced [ ] around an IPv6 address)") from None
    hostport = parts.netloc.rpartition("@")[2]
    try:
        port = parts.port
    except ValueError:
        text = hostport.rpartition("]")[2].rpartition(":")[2]
        raise ValueError(f"port {text!r} is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("has no host name")
    if port == 0 or (port is None and hostport.endswith(":")):
        raise ValueError("port must be a number from 1 to 65535")
    if any(c.isspace() for c in url):
        raise ValueError("contains white space")
    return url.rstrip("/")
