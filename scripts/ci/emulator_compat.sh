#!/usr/bin/env bash
# Run the settlement-compatibility subset of the emulator suite against azure-servicebus 7.14.x,
# which pre-settles dispositions (7.15 in the main venv waits for the outcome).
# Usage: scripts/ci/emulator_compat.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-sb714
SB_VERSION="${SB_COMPAT_VERSION:-7.14.3}"
PY="${PYTHON:-$(scripts/find_python.sh)}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "azure-servicebus==${SB_VERSION}" pytest pytest-timeout hypothesis
# the emulator is pure Python; install the project without its (heavier) runtime deps
"$VENV/bin/pip" install -q -e . --no-deps
"$VENV/bin/python" -c "import azure.servicebus as sb; print('azure-servicebus', sb.__version__)"
# the files by name: collecting all of tests/emulator would import what this small venv does not have
# (azure-identity, cryptography, ...) for tests the subset does not run
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/emulator/test_async_and_compat.py tests/emulator/test_basic.py tests/emulator/test_codec.py \
  tests/emulator/test_sessions.py -k "compat or test_basic or test_sessions or codec" "$@"
