"""requirements.txt (what Azure deploys) must say what pyproject.toml says; the tools' needs are an extra."""

from __future__ import annotations

import tomllib
from pathlib import Path


def _normalise(spec: str) -> str:
    return spec.replace(" ", "").lower()


def test_requirements_txt_matches_pyproject_dependencies() -> None:
    declared = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.split("#", 1)[0].strip() for line in Path("requirements.txt").read_text().splitlines()]
    required = [line for line in lines if line]
    assert sorted(map(_normalise, required)) == sorted(map(_normalise, declared))


def test_the_tools_needs_are_an_extra_that_dev_installs() -> None:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    deployed = {_name(spec) for spec in project["dependencies"]}
    tools = {_name(spec) for spec in project["optional-dependencies"]["tools"]}
    assert {"rich", "azure-servicebus"} <= tools and not tools & deployed
    assert "orders-sessions[tools]" in project["optional-dependencies"]["dev"]
    assert project["scripts"]["orders"] == "orders_cli.cli:main"


def _name(spec: str) -> str:
    return _normalise(spec).split(">")[0].split("=")[0].split("[")[0]


def test_funcignore_keeps_dev_only_code_out_of_the_deployment() -> None:
    ignored = Path(".funcignore").read_text().split()
    for path in ("tests/", "devstack/", "orders_cli/", "bench/", ".venv/", "infra/", ".local/"):
        assert path in ignored, path
