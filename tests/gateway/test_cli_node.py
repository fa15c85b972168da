"""The README's walk-through for a borough system, done for real: keys, config, a client, the node
as its own process, a token by private_key_jwt, a form in, the episode back out, consent, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from click.testing import CliRunner
from joserfc.jwk import ECKey

from gateway.cli import cli
from gateway.demo import free_port
from gateway.settings import unknown_environment

from ..adapters.facts import EXAMPLES


def _cafx(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    keys = _cafx("keys", "init", "--member", "E09000012", "--out", str(tmp_path / "keys"))
    config = tmp_path / "node.toml"
    config.write_text(
        f'member_id = "E09000012"\n'
        f'database_url = "sqlite:///{tmp_path / "node.sqlite3"}"\n'
        f"port = {port}\n"
        f'public_url = "http://127.0.0.1:{port}"\n' + keys,
        encoding="utf-8",
    )
    _cafx("db", "upgrade", "--config", str(config))
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("the node did not become ready")
        yield base, config
    finally:
        process.terminate()  # SIGTERM: graceful shutdown
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr.decode()[-2000:]
        # JSON logs, and never a child's name or NHS number in them.
        for line in stderr.decode().splitlines():
            if line.startswith("{"):
                assert "Leah" not in line and "0778857255" not in line


def test_a_borough_system_follows_the_readme(node: tuple[str, Path], tmp_path: Path) -> None:
    base, config = node
    key = ECKey.generate_key("P-256", parameters={"kid": "ecaf-1"}, private=True)
    jwks = tmp_path / "ecaf-jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}), encoding="utf-8")
    client_id = _cafx(
        "clients", "add", "eCAF", "--config", str(config),
        "--scopes", "episodes:read,episodes:write,consents:write,audit:read",
        "--jwks", str(jwks),
    ).strip()  # fmt: skip
    assertion = private_key_jwt_sign(
        key.as_dict(private=True), client_id, f"{base}/oauth/token", alg="ES256"
    )
    token = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=10,
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    form = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()
    answer = requests.post(f"{base}/api/v1/forms", data=form, headers=auth, timeout=10).json()
    (episode_id,) = answer["episode_ids"]
    episode = requests.get(f"{base}/api/v1/episodes/{episode_id}", headers=auth, timeout=10).json()
    assert episode["child"]["given_names"] == "Leah"
    as_ecaf = requests.get(
        f"{base}/api/v1/episodes/{episode_id}?format=ecaf-xml-v3", headers=auth, timeout=10
    )
    assert as_ecaf.headers["Content-Type"].startswith("application/xml")
    assert b"CAF-211-2024-06370" in as_ecaf.content
    decision = requests.post(
        f"{base}/api/v1/episodes/{episode_id}/consent-check",
        json={"recipient": {"agency_type": "police"}, "purpose": "early_help"},
        headers=auth,
        timeout=10,
    ).json()
    assert decision["decision"] == "deny"  # police are not among the agencies consented to
    verified = requests.get(f"{base}/api/v1/audit/verify", headers=auth, timeout=10).json()
    assert verified["ok"] is True and verified["checked"] >= 3
    assert "cafx_http_requests_total" in requests.get(f"{base}/metrics", timeout=10).text
    # The operator's view of the same chain, and a key rotation that keeps every episode readable.
    assert json.loads(_cafx("audit", "verify", "--config", str(config)))["ok"] is True
    rotated = _cafx("keys", "rotate", "--config", str(config), "--retire")
    assert "episodes 1" in rotated and "retired k1" in rotated, rotated
    # The supplier's contract ends: its access is taken away, its live token with it.
    assert _cafx("clients", "disable", client_id, "--config", str(config)).strip() == (
        f"{client_id} disabled"
    )
    gone = requests.get(f"{base}/api/v1/episodes/{episode_id}", headers=auth, timeout=10)
    assert gone.status_code == 401


def test_a_misspelt_setting_in_the_environment_stops_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TOML file with an unknown name is refused; the same typo in a `CAFX_*` variable (the
    deploy files configure through the environment) left its setting at the default silently."""
    config = tmp_path / "node.toml"
    config.write_text(
        f'member_id = "E09000012"\ndatabase_url = "sqlite:///{tmp_path / "n.sqlite3"}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CAFX_DISCLOSURE_APROVAL", "always")  # one P
    monkeypatch.setenv("CAFX_TEST_ANYTHING", "tests' own switches are not settings")
    result = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code != 0
    assert "unknown settings in the environment: CAFX_DISCLOSURE_APROVAL" in result.output
    assert "always" not in result.output  # the name, never the value
    monkeypatch.delenv("CAFX_DISCLOSURE_APROVAL")
    result = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output


def test_kubernetes_service_links_are_not_taken_for_misspelt_settings() -> None:
    """Kubernetes gives every pod variables named after the namespace's Services (`cafx-camden-api`:
    CAFX_CAMDEN_API_SERVICE_HOST, ...): inside a pod, names of that shape are let through."""
    links = {
        "CAFX_CAMDEN_API_SERVICE_HOST": "10.0.0.1",
        "CAFX_CAMDEN_API_SERVICE_PORT": "80",
        "CAFX_CAMDEN_API_SERVICE_PORT_API": "80",
        "CAFX_CAMDEN_API_PORT": "tcp://10.0.0.1:80",
        "CAFX_CAMDEN_FEDERATION_PORT_8443_TCP_ADDR": "10.0.0.2",
    }
    typo = {"CAFX_DISCLOSURE_APROVAL": "always"}
    assert unknown_environment(links | typo | {"KUBERNETES_SERVICE_HOST": "10.0.0.10"}) == [
        "CAFX_DISCLOSURE_APROVAL"
    ]
    assert unknown_environment(links) == sorted(links)  # outside a pod: refused like any other
