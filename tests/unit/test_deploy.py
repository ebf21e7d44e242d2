"""The container and service-manager files promise what the README says (hadolint lints the Dockerfile in CI)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.support.app import ROOT


def test_the_image_runs_unprivileged_with_a_readiness_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    assert "USER root" not in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "/ready" in dockerfile
    assert "COPY policies ./policies" in dockerfile
    assert "COPY service ./service" in dockerfile
    assert 'ENTRYPOINT ["tokengate"]' in dockerfile
    assert 'CMD ["run"]' in dockerfile


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_waits_for_a_healthy_postgres() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    service = compose["services"]["tokengate"]
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"]["postgres"]
    assert service["environment"]["TOKENGATE_DATABASE__URL"].startswith("postgresql+asyncpg://")


def test_the_systemd_unit_stops_through_the_supervisor() -> None:
    unit = (ROOT / "deploy" / "tokengate.service").read_text()
    assert "KillMode=mixed" in unit
    assert "KillSignal=SIGTERM" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "User=tokengate" in unit
