"""What the environment says about reaching endpoints: the proxy and the CA certificates.

**Proxies.** ``proxy_for(url)`` follows the variables curl, pip and requests read:
``https_proxy`` for ``https://`` URLs, ``http_proxy`` for ``http://`` ones, ``all_proxy``
for either when that one is unset; each name in lower case first, then upper case. A
value without a scheme is an HTTP proxy (``proxy:3128``), and ``user:password@`` in it
authenticates (``Proxy-Authorization: Basic``). Only HTTP proxies are understood
(``https://`` requests go through them in a ``CONNECT`` tunnel): a ``https://`` or
``socks`` proxy URL, or a malformed one, is a ``ConfigError`` naming the variable.
``no_proxy`` / ``NO_PROXY`` lists, by commas or spaces, what goes direct: ``*``
(everything); a host name, which also covers its subdomains (``example.org``,
``.example.org`` and ``*.example.org`` alike); an IP address or a CIDR network (matched
against IP addresses in URLs, never resolved); any of these with ``:PORT`` to exempt
that port alone. Loopback is *not* exempt unless listed, as with curl and httpx: a
local server behind a proxy setting needs ``NO_PROXY=localhost,127.0.0.1,::1``.

**Certificates.** ``trust()`` is the TLS context that checks ``https://`` endpoints:
the CA file in ``SSL_CERT_FILE`` and/or the hashed-certificate directories in
``SSL_CERT_DIR`` when set (they replace the default bundle, as they do for OpenSSL),
else certifi's bundle. Host names are always checked.

The run's lanes (``wire.py``), the pre-flight checks and the batch client all take
their proxy and certificates from here, through their route.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import certifi
import httpx

from alignbf.config.urls import check_base_url
from alignbf.errors import ConfigError
from alignbf.transport.keys import register_secret

_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Proxy:
    """The proxy a route's requests go through."""

    url: str
    """The URL as given, with a scheme (may hold ``user:password@``)."""
    variable: str
    """The environment variable it came from."""
    host: str
    port: int
    authorization: bytes | None = None
    """The ``Proxy-Authorization`` value when the URL has credentials."""

    @property
    def shown(self) -> str:
        """``http://host:port``: what messages show (never credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:
        return f"proxy {self.shown} (from {self.variable})"

    def for_httpx(self) -> httpx.Proxy:
        """The same proxy for an ``httpx`` client (pre-flight checks, batch API)."""
        return httpx.Proxy(self.url)


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, value) of ``name`` in lower case, else upper case; empty counts as unset."""
    for variable in (name.lower(), name.upper()):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return None


def _hide_userinfo(text: str) -> str:
    return _USERINFO.sub("", text)


def parse_proxy(variable: str, value: str) -> Proxy:
    """The proxy a variable's value names.

    Raises:
        ConfigError: one line naming the variable and what is wrong with its value.
    """
    text = value if "://" in value else f"http://{value}"
    scheme, _, rest = text.partition("://")
    where = f"{variable} {_hide_userinfo(text)!r}"
    if scheme.lower() != "http":
        raise ConfigError(
            f"{where}: only http:// proxies are supported (https:// endpoints go through "
            "them in a CONNECT tunnel)"
        )
    try:
        check_base_url(f"http://{rest}")
        url = httpx.URL(text)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ConfigError(f"{where}: not a valid proxy URL ({exc})") from None
    authorization = None
    if url.username or url.password:
        register_secret(url.password or url.username)
        pair = f"{url.username}:{url.password}".encode()
        authorization = b"Basic " + base64.b64encode(pair)
    return Proxy(text, variable, url.host, url.port or 80, authorization)


@dataclass(frozen=True)
class _Exemption:
    """One entry of ``NO_PROXY``."""

    name: str | None = None
    address: _Address | None = None
    network: _Network | None = None
    port: int | None = None
    everything: bool = False

    def covers(self, host: str, address: _Address | None, port: int) -> bool:
        if self.everything:
            return True
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address in self.network
        if self.address is not None:
            return address == self.address
        name = self.name or ""
        return bool(name) and (host == name or host.endswith("." + name))


def _exemption(entry: str) -> _Exemption:
    """Parse one ``NO_PROXY`` entry.

    Raises:
        ValueError: a port or network that cannot be read.
    """
    name, port_text = entry, ""
    if entry.startswith("["):
        name, _, after = entry[1:].partition("]")
        port_text = after.removeprefix(":")
    elif entry.count(":") == 1:
        name, _, port_text = entry.partition(":")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    if "/" in name:
        try:
            return _Exemption(network=ipaddress.ip_network(name, strict=False), port=port)
        except ValueError:
            raise ValueError(f"{name!r} is not an IP network") from None
    try:
        return _Exemption(address=ipaddress.ip_address(name), port=port)
    except ValueError:
        pass
    return _Exemption(name=name.lower().lstrip("*").lstrip(".").rstrip("."), port=port)


def bypasses(no_proxy: str, url: httpx.URL, variable: str = "NO_PROXY") -> bool:
    """Whether ``no_proxy`` (the value of ``variable``) sends ``url`` direct.

    Raises:
        ConfigError: an entry with a broken port or network.
    """
    host = url.host.lower().rstrip(".")
    try:
        address: _Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    port = url.port or (443 if url.scheme == "https" else 80)
    entries = [entry for entry in re.split(r"[,\s]+", no_proxy) if entry]
    exemptions = []
    for entry in entries:
        try:
            exemptions.append(_exemption(entry) if entry != "*" else _Exemption(everything=True))
        except ValueError as exc:
            raise ConfigError(f"{variable} entry {entry!r}: {exc}") from None
    return any(exemption.covers(host, address, port) for exemption in exemptions)


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy the environment names for ``url``, or None to connect directly.

    Raises:
        ConfigError: the proxy variable or ``NO_PROXY`` is malformed (one line naming it).
    """
    env = os.environ if environ is None else environ
    target = httpx.URL(url)
    found = _variable(env, f"{target.scheme}_proxy") or _variable(env, "all_proxy")
    if found is None:
        return None
    proxy = parse_proxy(*found)
    exempt = _variable(env, "no_proxy")
    if exempt is not None and bypasses(exempt[1], target, exempt[0]):
        return None
    return proxy


def trust(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The TLS context that verifies servers: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi.

    Raises:
        ConfigError: a named file or directory is missing or holds no certificate.
    """
    env = os.environ if environ is None else environ
    cafile = env.get("SSL_CERT_FILE", "").strip() or None
    capath = env.get("SSL_CERT_DIR", "").strip() or None
    if cafile is None and capath is None:
        return ssl.create_default_context(cafile=certifi.where())
    if cafile is not None and not os.path.isfile(cafile):
        raise ConfigError(f"SSL_CERT_FILE {cafile!r}: no such file")
    for directory in (capath or "").split(os.pathsep):
        if directory and not os.path.isdir(directory):
            raise ConfigError(f"SSL_CERT_DIR {directory!r}: no such directory")
    try:
        context = ssl.create_default_context(cafile=cafile, capath=capath)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"SSL_CERT_FILE {cafile!r}: no PEM certificate could be read ({reason})"
        ) from None
    return context


def plain_context() -> ssl.SSLContext:
    """A context that trusts nothing, for ``http://`` routes (httpx clients want one)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
