"""requirements.txt (what Azure deploys) must say what pyproject.toml says; the tools' needs are an extra."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _normalise(spec: str) -> str:
    return spec.replace(" ", "").lower()


def _pins() -> dict[str, str]:
    """requirements.txt as {canonical name: version}; every entry must be an exact `==` pin."""
    pins: dict[str, str] = {}
    for raw in Path("requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version and not any(c in version for c in "<>=,;"), f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def test_requirements_txt_pins_every_pyproject_dependency_exactly() -> None:
    """Each [project.dependencies] entry is pinned with `==` in requirements.txt, to a version its
    specifier allows: a deploy installs exactly what was tested."""
    pins = _pins()
    for spec in tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not locked: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy {spec!r}: run `make lock`"
        )


def test_requirements_txt_is_the_whole_dependency_closure_and_what_is_installed() -> None:
    """The lock holds the transitive closure of pyproject's dependencies, nothing else (computed from the
    installed distributions' own metadata), and the venv runs exactly those versions."""
    pins = _pins()
    wanted = [
        Requirement(s) for s in tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
    ]
    closure: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        dist = metadata.distribution(name)
        assert dist.version == pins.get(name), f"{name}: installed {dist.version}, locked {pins.get(name)}"
        for text in dist.requires or []:
            child = Requirement(text)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                wanted.append(child)
    assert closure == set(pins), f"lock and closure differ: {sorted(closure ^ set(pins))} (run `make lock`)"


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
