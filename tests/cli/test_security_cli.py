"""``pacs user …`` and the first start of ``pacs serve``: admin created, password printed
once, authentication on by default, HTTPS with the configured certificate."""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import clean_env, describe, run_pacs
from tests.cli.test_serve import Server, start_server  # noqa: F401
from tests.dicom.test_access import self_signed


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(PACS_DATA_DIR=str(tmp_path / "pacs-data"))


def test_user_commands(tmp_path: Path, env: dict[str, str]) -> None:
    def pacs(*args: str, stdin: str | None = None) -> str:
        import subprocess

        from tests.cli.helpers import pacs_command

        result = subprocess.run([*pacs_command(), *args], cwd=tmp_path, env=env, input=stdin,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, describe(result)
        return result.stdout

    assert "added user dr.binh (radiologist)" in pacs(
        "user", "add", "dr.binh", "--role", "radiologist", "--full-name", "Dr Binh",
        "--password-stdin", stdin="first password\n")
    listed = pacs("user", "list")
    assert re.search(r"dr\.binh\s+radiologist\s+active\s+Dr Binh", listed), listed
    pacs("user", "passwd", "dr.binh", "--password-stdin", stdin="second password\n")
    pacs("user", "disable", "dr.binh")
    assert re.search(r"dr\.binh\s+radiologist\s+disabled", pacs("user", "list"))
    refused = run_pacs("user", "add", "dr.binh", "--role", "radiologist", "--password-stdin",
                       cwd=tmp_path, env=env)
    assert refused.returncode != 0
    bad_role = run_pacs("user", "add", "x", "--role", "janitor", cwd=tmp_path, env=env)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    assert "intact" in pacs("audit", "verify")  # user changes are audited, chain holds


def _trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _wait_https(server: Server, cert: Path) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"pacs serve exited:\n{server.output()}")
        try:
            httpx.get(f"https://127.0.0.1:{server.http_port}/api/health", verify=_trust(cert), timeout=3)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    pytest.fail(f"no HTTPS answer:\n{server.output()}")


def test_first_start_creates_admin_and_serves_https_with_auth_on(
        start_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    cert, key = self_signed(tmp_path)
    # start_server turns authentication off and sets an admin password for the other serve
    # tests; here the product defaults apply: auth on, and a random password printed once.
    import tests.cli.test_serve as serve_tests

    real_clean_env = serve_tests.clean_env
    monkeypatch.setattr(serve_tests, "clean_env", lambda **kw: real_clean_env(
        PACS_HTTP_TLS_CERT=str(cert), PACS_HTTP_TLS_KEY=str(key)))
    server = start_server(workers=1)
    _wait_https(server, cert)
    base = f"https://127.0.0.1:{server.http_port}"
    match = re.search(r"Created user 'admin' with password: (\S+)", server.output())
    assert match, server.output()
    password = match.group(1)
    with httpx.Client(base_url=base, verify=_trust(cert), timeout=10) as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/dicomweb/studies").status_code == 401
        assert client.get("/dicomweb/studies", auth=("admin", password)).status_code == 200
        token = client.post("/api/auth/token", auth=("admin", password)).json()["access_token"]
        users = client.get("/api/users", headers={"Authorization": f"Bearer {token}"}).json()
        assert [u["username"] for u in users] == ["admin"]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.http_port}/api/health", timeout=3)
