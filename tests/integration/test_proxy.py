"""Runs through a real proxy on 127.0.0.1 (mitmproxy's ``mitmdump``) and over real TLS.

The proxy logs every exchange it carries (``CONNECT`` tunnels and the requests it
forwards or decrypts) to a JSONL file, so the tests count what went through it beside
the loopback server's ledger. mitmproxy pins an older h11 than httpcore needs, so it
is built into its own ``.cache/mitmproxy/venv`` on first use (about 20 s; pip's cache
makes it quicker afterwards); the tests skip, loudly, only when it cannot be installed.
TLS uses a test CA made by ``trustme``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from alignbf.config import assets
from tests.conftest import MACHINE_ENV, ROOT, cli
from tests.integration.conftest import BATCH_ENDPOINTS, FAST_ENV, Server

VENV = ROOT / ".cache" / "mitmproxy" / "venv"
MITMDUMP = VENV / "bin" / "mitmdump"
CALLS = 72
"""Chat requests of the smoke study (8 simulations, 3 agents x 3 turns)."""
FLOW_LOG_ADDON = """
import json, os

def _log(record):
    with open(os.environ["ALIGNBF_FLOW_LOG"], "a") as out:
        out.write(json.dumps(record) + "\\n")

def http_connect(flow):
    _log({"method": "CONNECT", "host": flow.request.host, "port": flow.request.port})

def response(flow):
    r = flow.request
    _log({"method": r.method, "scheme": r.scheme, "host": r.host, "port": r.port,
          "path": r.path, "status": flow.response.status_code})
"""


def _install() -> str | None:
    """Build mitmproxy once; returns why it is impossible, or None."""
    if MITMDUMP.exists():
        return None
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, env=MACHINE_ENV)
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "mitmproxy>=10,<13"],
        capture_output=True,
        text=True,
        env=MACHINE_ENV,
    )
    if done.returncode != 0 or not MITMDUMP.exists():
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else "pip install mitmproxy failed"
    return None


@pytest.fixture(scope="module")
def mitmdump() -> Path:
    """The ``mitmdump`` command, installed on first use."""
    why = _install()
    if why is not None:
        pytest.skip(f"PROXY TESTS SKIPPED: mitmproxy cannot be installed ({why})")
    return MITMDUMP


@dataclass
class Proxy:
    """A running mitmdump and the log of what it carried."""

    url: str
    log: Path
    confdir: Path

    def flows(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    @property
    def ca(self) -> Path:
        """mitmproxy's own CA, which signs what it presents when it decrypts TLS."""
        return self.confdir / "mitmproxy-ca-cert.pem"


@pytest.fixture
def proxy(mitmdump: Path, tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """A factory: ``proxy("--set", "ignore_hosts=.*")`` starts mitmdump on 127.0.0.1."""
    processes: list[subprocess.Popen[str]] = []
    addon = tmp_path / "flow_log.py"
    addon.write_text(FLOW_LOG_ADDON)

    def start(*options: str) -> Proxy:
        where = tmp_path / f"proxy-{len(processes)}"
        where.mkdir()
        log = where / "flows.jsonl"
        process = subprocess.Popen(
            [str(mitmdump), "--mode", "regular", "--listen-host", "127.0.0.1",
             "--listen-port", "0", "--set", f"confdir={where}", "-s", str(addon), *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "ALIGNBF_FLOW_LOG": str(log)}, start_new_session=True,
        )  # fmt: skip
        processes.append(process)
        assert process.stdout is not None
        for line in process.stdout:
            if "proxy listening at " in line:
                address = line.split("proxy listening at ")[1].strip().rstrip(".")
                return Proxy(f"http://{address}", log, where)
        raise AssertionError(f"mitmdump did not start (exit {process.wait()})")

    yield start
    for process in processes:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_smoke(url: str, run_dir: Path, study: str = "smoke", **env: str) -> tuple[int, str]:
    """``alignbf run STUDY --backend endpoints --base-url URL``: (exit code, stderr)."""
    done = cli(
        "run", study, "--backend", "endpoints", "--base-url", url, "--run-dir", str(run_dir),
        "--quiet", env={**FAST_ENV, **env}, timeout=180,
    )  # fmt: skip
    return done.returncode, done.stderr


def statuses(run_dir: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM simulations GROUP BY 1"))


def chat_flows(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in flows if f["method"] == "POST" and f["path"] == "/v1/chat/completions"]


def test_the_run_and_its_preflight_go_through_the_http_proxy(
    serve: Callable[..., Server], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    server, mitm = serve(), proxy()
    code, err = run_smoke(server.url, tmp_path / "run", http_proxy=mitm.url)
    assert code == 0, err
    assert statuses(tmp_path / "run") == {"ok": 8}
    flows = mitm.flows()
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    assert {(f["host"], f["port"]) for f in flows} == {("127.0.0.1", port)}
    assert [f["path"] for f in flows if f["method"] == "GET"] == ["/v1/models"]
    assert len(chat_flows(flows)) == len(server.ledger()) == CALLS
    assert {f["status"] for f in chat_flows(flows)} == {200}


def test_no_proxy_sends_the_listed_host_direct(
    serve: Callable[..., Server], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    server, mitm = serve(), proxy()
    port = server.url.rsplit(":", 1)[1].split("/")[0]
    code, err = run_smoke(
        server.url, tmp_path / "run", HTTP_PROXY=mitm.url, NO_PROXY=f"example.org,127.0.0.1:{port}"
    )
    assert code == 0, err
    assert len(server.ledger()) == CALLS
    assert mitm.flows() == []


@pytest.fixture(scope="module")
def test_ca() -> trustme.CA:
    return trustme.CA(organization_name="alignbf test CA")


@pytest.fixture
def tls_server(
    serve: Callable[..., Server], test_ca: trustme.CA, tmp_path: Path
) -> tuple[Server, Path]:
    """``serve-synthetic`` over HTTPS with a certificate of the test CA; (server, CA file)."""
    cert = test_ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    test_ca.cert_pem.write_to_path(str(ca_file))
    server = serve("--tls-cert", str(chain), "--tls-key", str(key))
    assert server.url.startswith("https://127.0.0.1:")
    return server, ca_file


def test_an_https_endpoint_is_trusted_through_ssl_cert_file(
    tls_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, ca_file = tls_server
    code, err = run_smoke(server.url, tmp_path / "refused")
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "the TLS certificate of https://127.0.0.1:" in err
    assert "CERTIFICATE_VERIFY_FAILED" in err
    assert "set SSL_CERT_FILE (or SSL_CERT_DIR) to the CA that issued it" in err
    assert not (tmp_path / "refused" / "run.sqlite").exists()

    code, err = run_smoke(server.url, tmp_path / "run", SSL_CERT_FILE=str(ca_file))
    assert code == 0, err
    assert statuses(tmp_path / "run") == {"ok": 8}


def test_https_goes_through_the_proxy_in_a_connect_tunnel(
    tls_server: tuple[Server, Path], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    server, ca_file = tls_server
    mitm = proxy("--set", "ignore_hosts=.*")  # tunnels TLS untouched: the client sees the server
    env = {"HTTPS_PROXY": mitm.url, "SSL_CERT_FILE": str(ca_file)}
    code, err = run_smoke(server.url, tmp_path / "run", **env)
    assert code == 0, err
    assert statuses(tmp_path / "run") == {"ok": 8}
    flows = mitm.flows()
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    assert flows, "nothing went through the proxy"
    assert {(f["method"], f["host"], f["port"]) for f in flows} == {("CONNECT", "127.0.0.1", port)}
    # one tunnel for the pre-flight check and one per lane (the endpoint's max_connections)
    assert 2 <= len(flows) <= 1 + 8


def test_a_tls_inspecting_proxy_is_trusted_through_ssl_cert_file(
    tls_server: tuple[Server, Path], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    """As on networks that decrypt TLS: the client trusts the proxy's CA, not the server's."""
    server, ca_file = tls_server
    mitm = proxy("--set", f"ssl_verify_upstream_trusted_ca={ca_file}")
    code, err = run_smoke(server.url, tmp_path / "refused", https_proxy=mitm.url)
    assert code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in err and "through proxy http://127.0.0.1:" in err

    env = {"https_proxy": mitm.url, "SSL_CERT_FILE": str(mitm.ca)}
    code, err = run_smoke(server.url, tmp_path / "run", **env)
    assert code == 0, err
    chats = chat_flows(mitm.flows())
    assert len(chats) == CALLS
    assert {(f["scheme"], f["status"]) for f in chats} == {("https", 200)}


def test_proxy_credentials_come_from_the_proxy_url(
    serve: Callable[..., Server], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    server, mitm = serve(), proxy("--set", "proxyauth=alice:s3cr3t-pw")
    code, err = run_smoke(server.url, tmp_path / "refused", HTTP_PROXY=mitm.url)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "asks for credentials (HTTP 407); give them in HTTP_PROXY as http://USER:" in err
    assert len(server.ledger()) == 0

    with_credentials = mitm.url.replace("http://", "http://alice:s3cr3t-pw@")
    code, err = run_smoke(server.url, tmp_path / "run", HTTP_PROXY=with_credentials)
    assert code == 0, err
    assert len(chat_flows(mitm.flows())) == CALLS
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"s3cr3t-pw" not in path.read_bytes(), path


def test_a_connect_tunnel_refused_for_credentials_is_one_line(
    tls_server: tuple[Server, Path], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    server, ca_file = tls_server
    mitm = proxy("--set", "proxyauth=alice:s3cr3t-pw", "--set", "ignore_hosts=.*")
    env = {"HTTPS_PROXY": mitm.url, "SSL_CERT_FILE": str(ca_file)}
    code, err = run_smoke(server.url, tmp_path / "refused", **env)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "asks for credentials (HTTP 407); give them in HTTPS_PROXY" in err

    env["HTTPS_PROXY"] = mitm.url.replace("http://", "http://alice:s3cr3t-pw@")
    code, err = run_smoke(server.url, tmp_path / "run", **env)
    assert code == 0, err
    assert statuses(tmp_path / "run") == {"ok": 8}


def test_batch_jobs_go_through_the_proxy(
    serve: Callable[..., Server], proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    text = assets.path("configs", "smoke.yaml").read_text(encoding="utf-8")
    (tmp_path / "study.yaml").write_text(text.replace("local-llamacpp", "local-batch"))
    (tmp_path / "endpoints.yaml").write_text(BATCH_ENDPOINTS)
    server, mitm = serve(), proxy()
    done = cli(
        "run", str(tmp_path / "study.yaml"), "--backend", "endpoints", "--batch",
        "--base-url", server.url, "--run-dir", str(tmp_path / "run"), "--quiet",
        env={**FAST_ENV, "ALIGNBF_BATCH_POLL_S": "0.01", "ALIGNBF_BATCH_IDLE_S": "0.5",
             "HTTP_PROXY": mitm.url},
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths = [f["path"].split("?")[0] for f in mitm.flows()]
    assert paths.count("/v1/batches") >= 1 + 9  # the pre-flight check, then one job per round
    assert paths.count("/v1/files") >= 9
    assert "/v1/chat/completions" not in paths


def test_a_malformed_proxy_variable_is_one_line(tmp_path: Path) -> None:
    code, err = run_smoke("http://127.0.0.1:9/v1", tmp_path / "run", HTTP_PROXY="http://proxy:x")
    assert code == 1
    assert err.strip() == (
        "alignbf: error: HTTP_PROXY 'http://proxy:x': not a valid proxy URL "
        "(port 'x' is not a number from 1 to 65535)"
    )
