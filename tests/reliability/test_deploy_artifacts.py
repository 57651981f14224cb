"""The deployment artifacts cannot be run here (no Docker): check what can be checked. The
compose file parses; every GOVCHAT_* variable it sets is a real setting and its value (with
placeholders filled) validates; every command it and the Dockerfile run exists with those
options; the paths the Dockerfile copies exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from govchat.cli import app as cli
from govchat.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _fill(value: str) -> str:
    """${VAR:?msg} / ${VAR:-default} / ${VAR} -> the default or a placeholder."""

    def sub(m: re.Match) -> str:
        default = m.group(3) if m.group(2) == ":-" else "placeholder-value-0123456789"
        return default or ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", sub, str(value))


def govchat_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for service in COMPOSE["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if key.startswith("GOVCHAT_"):
                env[key] = _fill(value)
    return env


def test_compose_has_the_production_shape():
    services = COMPOSE["services"]
    assert {"api", "indexer", "qdrant", "postgres", "llm", "proxy"} <= set(services)
    assert services["api"]["deploy"]["replicas"] >= 2
    assert "index" in services["indexer"]["command"]  # the indexing job runs separately
    assert services["indexer"].get("profiles") == ["jobs"]


def test_every_govchat_variable_is_a_real_setting_with_a_valid_value(monkeypatch):
    env = govchat_env()
    assert len(env) >= 10
    fields = {f"GOVCHAT_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    for key in list(__import__("os").environ):
        if key.startswith("GOVCHAT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.qdrant_url == "http://qdrant:6333"
    assert settings.resolved_database_url.startswith("postgresql+psycopg://govchat:")
    assert settings.cors_origins == ["https://www.example.gov.uk"]
    assert settings.api_keys_required is True


@pytest.mark.parametrize("service", ["api", "indexer"])
def test_the_commands_the_containers_run_exist(service):
    command = COMPOSE["services"][service]["command"]
    options = {a.split("=")[0] for a in command if a.startswith("--")}
    r = CliRunner().invoke(cli, [command[0], "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    for option in options:
        assert option in r.output, (service, option)


def test_dockerfile_copies_real_paths_and_runs_real_commands():
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in shlex.split(line)[1:-1]:
                assert (ROOT / src).exists(), src
    cmd = re.search(r"^CMD (\[.*\])", DOCKERFILE, re.M).group(1)
    args = yaml.safe_load(cmd)
    help_text = CliRunner().invoke(cli, [args[0], "--help"], terminal_width=200).output
    for option in (a for a in args if a.startswith("--")):
        assert option in help_text
    assert "USER govchat" in DOCKERFILE  # not root
