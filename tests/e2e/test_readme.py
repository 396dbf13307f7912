"""The README cannot drift: its marked commands run verbatim, in order, in a fresh clone.

A block is run when the line before its ```bash fence is `<!-- readme-test: MODE -->`:
  run         each command in this shell, in order (so `source .venv/bin/activate` carries on);
  background  started in its own process group and left running (a server a person leaves open in a
              terminal); stopped when the test ends;
  retry       the block's commands, as one `&&` chain, until it succeeds (60 s): for commands that need
              the background servers to be up, as a person would run them again.
Comments (`# ...`) are dropped; nothing else is changed. After the README, the commands `make demo`
printed under "Try next" are run as printed. The clone is `git clone` of this repository's HEAD
(committed work only) and installs its own venv with `make install`, as a newcomer's would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- readme-test: (run|background|retry) -->\s*$")
EMULATOR_PORT = 5672  # local.settings.json.example's ServiceBusConnection
EMULATOR_ADMIN_PORT = 5300  # `orders emulator`'s management API (docs/emulator.md), read by `orders status`
RETRY_SECONDS = 60


@dataclass(frozen=True)
class Block:
    mode: str
    commands: list[str]
    line: int  # 1-based line of the fence in README.md


def readme_blocks(text: str) -> list[Block]:
    """The marked ```bash blocks of the README, in order, with comments and blank lines dropped."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = MARKER.match(line)
        if not match:
            continue
        assert i + 1 < len(lines) and lines[i + 1].strip() == "```bash", (
            f"line {i + 1}: marker without ```bash"
        )
        commands = []
        j = i + 2
        while lines[j].strip() != "```":
            command = re.sub(r"(^|\s)#.*$", "", lines[j]).strip()
            if command:
                commands.append(command)
            j += 1
        assert commands, f"line {i + 2}: an empty marked block"
        blocks.append(Block(match.group(1), commands, i + 2))
    return blocks


def script_for(blocks: list[Block], pid_file: Path) -> str:
    """One bash script: the README's blocks in order; the first failing command names its line."""
    out = [
        "set -uo pipefail",
        'fail() { echo "README command failed (README.md block at line $1): $2" >&2; exit 1; }',
        "mkdir -p .local",
    ]
    for n, block in enumerate(blocks):
        if block.mode == "run":
            for command in block.commands:
                out.append(f"{command} || fail {block.line} {shlex.quote(command)}")
        elif block.mode == "background":
            for k, command in enumerate(block.commands):
                log = f".local/readme-background-{n}-{k}.log"
                out.append(f"setsid bash -c {shlex.quote(command)} > {log} 2>&1 < /dev/null &")
                out.append(f"echo $! >> {shlex.quote(str(pid_file))}")
        else:
            chain = " && ".join(f"( {c} )" for c in block.commands)
            out += [
                "ok=0",
                f"for attempt in $(seq {RETRY_SECONDS}); do",
                f"  if {chain}; then ok=1; break; fi",
                "  sleep 1",
                "done",
                f"[ $ok = 1 ] || fail {block.line} {shlex.quote(' && '.join(block.commands))}",
            ]
    return "\n".join(out) + "\n"


def fresh_shell_environment() -> dict[str, str]:
    """This process's environment minus the venv and the app's settings: a newcomer's shell."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PYTEST", "ServiceBusConnection", "OrderStoreConnection", "ORDERS_"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH", "APPLICATIONINSIGHTS_CONNECTION_STRING", "COLUMNS")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv" not in p)
    return env


def stop_background(pid_file: Path) -> None:
    pids = [int(x) for x in pid_file.read_text().split()] if pid_file.is_file() else []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_the_readme_markers_cover_the_newcomer_path() -> None:
    blocks = readme_blocks((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    commands = [c for b in blocks for c in b.commands]
    assert commands[:3] == ["make install", "source .venv/bin/activate", "make demo"]
    assert "make emulator" in commands and "make host" in commands
    assert any(c.startswith("orders publish") for c in commands)
    assert "make test" not in commands  # it is what runs this test


def test_readme_commands_run_verbatim_in_a_fresh_clone(tmp_path: Path) -> None:
    for port in (EMULATOR_PORT, EMULATOR_ADMIN_PORT):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is in use: the README's `make emulator` needs it")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    blocks = readme_blocks((clone / "README.md").read_text(encoding="utf-8"))
    pid_file = tmp_path / "background.pids"
    env = fresh_shell_environment()
    try:
        result = subprocess.run(
            ["bash", "-c", script_for(blocks, pid_file)],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=720,
        )
        assert result.returncode == 0, _report(result, clone)

        # the manual path really processed the orders: both runs' poison messages are quarantined
        status = _orders(clone, env, "status", "--json")
        assert status["outcomes"]["applied"] > 0, status["outcomes"]
        assert status["outcomes"]["quarantined"] == 10, status["outcomes"]  # 5 poison per publish

        # "Try next", exactly as `make demo` printed it
        try_next = re.sub(r" \\\n\s+", " ", result.stdout.split("Try next", 1)[-1])  # `\` continuations
        printed = re.findall(r"^  \$ (.+)$", try_next, re.M)
        assert len(printed) >= 3, result.stdout[-3000:]
        for command in printed:
            done = subprocess.run(
                ["bash", "-c", f"source .venv/bin/activate && {command}"],
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"`{command}` (printed by make demo) failed:\n{done.stderr}"
            assert done.stdout.strip(), f"`{command}` printed nothing"
    finally:
        stop_background(pid_file)


def _orders(clone: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """`orders ARGS --json`, retried until the host has worked through the second publish."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        done = subprocess.run(
            ["bash", "-c", "source .venv/bin/activate && orders " + shlex.join(args)],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        doc: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
        if (doc and doc["outcomes"]["quarantined"] >= 10) or time.monotonic() > deadline:
            return doc
        time.sleep(1)


def _report(result: subprocess.CompletedProcess[str], clone: Path) -> str:
    logs = "".join(
        f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
        for log in sorted((clone / ".local").glob("readme-background-*.log"))
    )
    return f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}{logs}"


def test_a_failing_readme_command_fails_the_run_and_names_its_line(tmp_path: Path) -> None:
    text = "<!-- readme-test: run -->\n```bash\ntrue   # fine\nfalse  # drifted\necho never\n```\n"
    blocks = readme_blocks(text)
    assert blocks == [Block("run", ["true", "false", "echo never"], 2)]
    result = subprocess.run(
        ["bash", "-c", script_for(blocks, tmp_path / "pids")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "never" not in result.stdout
    assert "README.md block at line 2): false" in result.stderr
