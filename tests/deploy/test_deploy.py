"""deploy/ is used for real: the bootstrap script builds a federation, and a node started with the
compose file's own environment (paths moved into a temporary folder) becomes ready; every CAFX_
variable in the compose file and the Kubernetes manifests is a setting the node knows."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509

from gateway.demo import free_port
from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SHARED = "/var/lib/cafx/shared"
BIN = Path(sys.executable).parent


def _bootstrap(root: Path, *members: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["/bin/sh", str(DEPLOY / "bootstrap.sh"), str(root), *members],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        check=True,
        timeout=120,
    )


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def test_bootstrap_makes_a_federation_once_and_keeps_it(tmp_path: Path) -> None:
    _bootstrap(tmp_path, "camden:E09000007:camden", "hackney:E09000012:hackney")
    members = tmp_path / "federation" / "members"
    certificate = (members / "E09000007" / "tls.crt").read_bytes()
    names = x509.load_pem_x509_certificate(certificate).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "camden" in names.value.get_values_for_type(x509.DNSName)
    assert "urn:caf:member:E09000007" in names.value.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    keys = (tmp_path / "hackney" / "data-keys.json").read_bytes()
    assert (tmp_path / "federation" / "metadata.jws").exists()

    again = _bootstrap(tmp_path, "camden:E09000007:camden", "hackney:E09000012:hackney")
    assert "version 2" in again.stdout  # re-signed, nothing re-issued
    assert (members / "E09000007" / "tls.crt").read_bytes() == certificate
    assert (tmp_path / "hackney" / "data-keys.json").read_bytes() == keys


def test_compose_services_match_what_bootstrap_makes() -> None:
    compose = _compose()
    members = compose["services"]["bootstrap"]["command"][1:]
    for member in members:
        short, gss, host = member.split(":")
        service = compose["services"][short]
        environment = service["environment"]
        assert environment["CAFX_MEMBER_ID"] == gss
        assert environment["CAFX_FEDERATION_PUBLIC_URL"] == f"https://{host}:8443"
        assert f"{SHARED}/federation/members/{gss}/" in environment["CAFX_TLS_CERT_FILE"]
        assert environment["CAFX_KEYFILE"] == f"{SHARED}/{short}/data-keys.json"
    fields = set(Settings.model_fields)
    for name, service in compose["services"].items():
        unknown = {
            key.removeprefix("CAFX_").lower()
            for key in service.get("environment", {})
            if key.startswith("CAFX_")
        } - fields
        assert not unknown, f"{name}: {unknown}"


def test_kubernetes_configmap_holds_only_known_settings() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "node.yaml").read_text(encoding="utf-8")))
    (config,) = (d for d in documents if d["kind"] == "ConfigMap")
    settings = Settings(
        **{k.removeprefix("CAFX_").lower(): v for k, v in config["data"].items()},
        database_url="postgresql://cafx@db:5432/camden",
    )
    assert settings.member_id == "E09000007" and settings.migrate_on_start is False
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Job", "Service"} <= kinds


def test_a_node_starts_from_the_compose_environment(tmp_path: Path) -> None:
    _bootstrap(tmp_path, "camden:E09000007:localhost")
    environment = {
        key: value.replace(SHARED, str(tmp_path)) if isinstance(value, str) else value
        for key, value in _compose()["services"]["camden"]["environment"].items()
    }
    api, federation = free_port(), free_port()
    environment |= {
        "CAFX_HOST": "127.0.0.1",
        "CAFX_PORT": str(api),
        "CAFX_FEDERATION_PORT": str(federation),
        "CAFX_DATABASE_URL": f"sqlite:///{tmp_path / 'camden.sqlite3'}",
    }
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "gateway.cli", "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **environment},
    )
    try:
        for _ in range(150):
            try:
                ready = requests.get(f"http://127.0.0.1:{api}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"the node did not become ready: {process.stderr}")
        # The federation listener speaks TLS with the bootstrap's certificate for this member.
        context = ssl.create_default_context(cafile=tmp_path / "federation" / "ca.crt")
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", federation), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert "urn:caf:member:E09000007" in names.value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr.decode()[-2000:]
