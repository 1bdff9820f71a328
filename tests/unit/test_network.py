"""The proxy and the CA certificates the environment names (``transport/network.py``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from alignbf.errors import ConfigError
from alignbf.transport.keys import MASK, scrub
from alignbf.transport.network import bypasses, parse_proxy, proxy_for, trust

PROXY = "http://proxy.lab.example:3128"


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({"https_proxy": PROXY}, "https://api.example.org/v1", ("https_proxy", PROXY)),
        ({"HTTPS_PROXY": PROXY}, "https://api.example.org/v1", ("HTTPS_PROXY", PROXY)),
        ({"https_proxy": PROXY}, "http://api.example.org/v1", None),
        ({"http_proxy": PROXY}, "http://api.example.org/v1", ("http_proxy", PROXY)),
        ({"HTTP_PROXY": PROXY, "http_proxy": "http://low:1"}, "http://a/v1", ("http_proxy", None)),
        ({"HTTP_PROXY": PROXY, "http_proxy": " "}, "http://a/v1", ("HTTP_PROXY", PROXY)),
        ({"ALL_PROXY": PROXY}, "https://a/v1", ("ALL_PROXY", PROXY)),
        ({"all_proxy": "http://o:1", "HTTPS_PROXY": PROXY}, "https://a", ("HTTPS_PROXY", PROXY)),
        ({"https_proxy": "proxy:3128"}, "https://a/v1", ("https_proxy", "http://proxy:3128")),
        ({}, "https://api.example.org/v1", None),
    ],
    ids=["https", "HTTPS", "other-scheme", "http", "lower-first", "empty-lower",
         "all", "all-last", "no-scheme", "none"],
)  # fmt: skip
def test_the_proxy_variable_follows_the_url_scheme_lower_case_first(
    environ: dict[str, str], url: str, expected: tuple[str, str | None] | None
) -> None:
    proxy = proxy_for(url, environ)
    if expected is None:
        assert proxy is None
        return
    assert proxy is not None
    assert proxy.variable == expected[0]
    assert proxy.url == (expected[1] or environ[expected[0]])


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://api.example.org/v1", True),
        ("example.org", "https://example.org/v1", True),
        ("example.org", "https://api.EXAMPLE.org/v1", True),
        ("example.org", "https://badexample.org/v1", False),
        (".example.org", "https://example.org/v1", True),
        (".example.org", "https://a.b.example.org/v1", True),
        ("*.example.org", "https://a.example.org/v1", True),
        ("example.org:8443", "https://example.org:8443/v1", True),
        ("example.org:8443", "https://example.org/v1", False),
        ("127.0.0.1:80", "http://127.0.0.1/v1", True),
        ("127.0.0.1", "http://127.0.0.1:8000/v1", True),
        ("127.0.0.1", "http://localhost:8000/v1", False),
        ("localhost", "http://127.0.0.1:8000/v1", False),
        ("10.0.0.0/8", "http://10.1.2.3:8000/v1", True),
        ("10.0.0.0/8", "http://11.0.0.1:8000/v1", False),
        ("10.0.0.0/8", "http://ten.example/v1", False),
        ("::1", "http://[::1]:8000/v1", True),
        ("[::1]:8000", "http://[::1]:8000/v1", True),
        ("[::1]:8000", "http://[::1]:9000/v1", False),
        ("fe80::/10", "http://[fe80::1]/v1", True),
        ("a.example, b.example", "https://b.example/v1", True),
        ("a.example b.example", "https://b.example/v1", True),
        ("a.example,,", "https://c.example/v1", False),
        ("", "https://a.example/v1", False),
    ],
)
def test_no_proxy_entries(no_proxy: str, url: str, direct: bool) -> None:
    assert bypasses(no_proxy, httpx.URL(url)) is direct
    environ = {"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY, "no_proxy": no_proxy}
    assert (proxy_for(url, environ) is None) is direct


def test_loopback_goes_through_the_proxy_unless_no_proxy_lists_it() -> None:
    proxy = proxy_for("http://127.0.0.1:8000/v1", {"HTTP_PROXY": PROXY})
    assert proxy is not None
    assert str(proxy) == "proxy http://proxy.lab.example:3128 (from HTTP_PROXY)"
    listed = {"HTTP_PROXY": PROXY, "NO_PROXY": "localhost,127.0.0.1,::1"}
    assert proxy_for("http://127.0.0.1:8000/v1", listed) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://proxy:abc", "https_proxy 'http://proxy:abc': not a valid proxy URL (port 'abc'"),
        ("http://proxy:0", "port must be a number from 1 to 65535"),
        ("http://", "https_proxy 'http://': not a valid proxy URL (has no host name)"),
        ("http://[::1", "unbalanced [ ] around an IPv6 address"),
        ("http://pro xy:3128", "contains white space"),
        ("ftp://proxy:21", "https_proxy 'ftp://proxy:21': only http:// proxies are supported"),
        ("socks5://u:pw@proxy:1080", "https_proxy 'socks5://proxy:1080': only http:// proxies"),
        ("https://proxy:443", "only http:// proxies are supported (https:// endpoints go"),
    ],
)
def test_a_malformed_proxy_is_one_line_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        proxy_for("https://api.example.org/v1", {"https_proxy": value})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_proxy_credentials_never_reach_a_message() -> None:
    proxy = parse_proxy("HTTPS_PROXY", "http://alice:s3cr3t-pw@proxy:3128")
    assert proxy.shown == "http://proxy:3128"
    assert proxy.authorization == b"Basic YWxpY2U6czNjcjN0LXB3"  # base64 of alice:s3cr3t-pw
    assert "s3cr3t" not in str(proxy)
    assert scrub("407 from http://alice:s3cr3t-pw@proxy:3128") == (
        f"407 from http://alice:{MASK}@proxy:3128"
    )
    with pytest.raises(ConfigError) as caught:
        parse_proxy("HTTPS_PROXY", "http://alice:s3cr3t-pw@proxy:99999")
    assert "s3cr3t" not in str(caught.value)


def test_a_broken_no_proxy_entry_is_one_line_naming_the_variable() -> None:
    environ = {"HTTPS_PROXY": PROXY, "no_proxy": "example.org, 10.0.0.0/33"}
    with pytest.raises(ConfigError, match=r"^no_proxy entry '10.0.0.0/33': '10.0.0.0/33' is not"):
        proxy_for("https://api.example.org/v1", environ)
    with pytest.raises(ConfigError, match=r"^NO_PROXY entry 'example.org:x': port 'x'"):
        proxy_for("https://api.example.org/v1", {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.org:x"})


@pytest.mark.parametrize(
    ("variable", "content", "message"),
    [
        ("SSL_CERT_FILE", None, "SSL_CERT_FILE '{path}': no such file"),
        ("SSL_CERT_FILE", "not a certificate\n", "SSL_CERT_FILE '{path}': no PEM certificate"),
        ("SSL_CERT_DIR", None, "SSL_CERT_DIR '{path}': no such directory"),
    ],
)
def test_a_broken_certificate_setting_is_one_line(
    tmp_path: Path, variable: str, content: str | None, message: str
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        trust({variable: str(path)})
    assert str(caught.value).startswith(message.format(path=path))
