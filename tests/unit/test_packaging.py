"""requirements.txt (what Azure deploys) must say what pyproject.toml says."""

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


def test_funcignore_keeps_dev_only_code_out_of_the_deployment() -> None:
    ignored = Path(".funcignore").read_text().split()
    for path in ("tests/", "devstack/", "bench/", ".venv/", "infra/", ".local/"):
        assert path in ignored, path
