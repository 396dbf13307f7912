"""Install an npm package into the repository's git-ignored .local/ once, safely under parallel test runs.

Azurite (devstack/azurite.py) and the Node Service Bus client (tests/fixtures/node_servicebus.py) are
installed this way on first use, so a clean clone needs only Node.js, not a setup step.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path


def npm_install_once(
    prefix: Path,
    package: str,
    marker: Path,
    *,
    unavailable: type[Exception],
    no_npm: str,
    timeout: float,
) -> None:
    """`npm install --prefix prefix package` unless `marker` (a file the install creates) exists.

    A file lock next to `prefix` lets one process install while parallel workers wait for it. Raises
    `unavailable` with `no_npm` when npm is missing, or with npm's output tail when the install fails.
    """
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise unavailable(no_npm)
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"{prefix.name}-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        result = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", package],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0 or not marker.exists():
            raise unavailable(
                f"`npm install {package}` failed (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
