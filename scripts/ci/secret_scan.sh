#!/usr/bin/env bash
# Secret scan of every tracked file (issue #6). Safe for CI on a clean clone: no stdin, no network
# except PyPI on first use. Fails (exit 1) on any finding that is not an audited false positive.
#
# Scanner: detect-secrets (Yelp, PyPI), pinned, in its own venv .venv-secrets (git-ignored via .venv-*/),
# created on first use so its dependencies never mix with the app's.
#
# Allowed on purpose, never secrets:
#   * the Azurite development account key (account devstoreaccount1). Microsoft publishes it in the
#     Azurite docs; every Azurite instance accepts it and nothing else. devstack/azurite.py needs it.
#   * `SharedAccessKey=local`, the placeholder the embedded Service Bus emulator accepts
#     (local.settings.json.example, devstack/emulator). It opens nothing outside this machine.
# Both are excluded by exact-value regexes below, so the same strings anywhere else are allowed too,
# but any other key is not.
#
# Audited false positives (e.g. a content hash in docs/cli.md that looks like a hex key) live in the
# detect-secrets baseline scripts/ci/secrets.baseline with "is_secret": false. To review a new finding:
#   .venv-secrets/bin/detect-secrets scan --baseline scripts/ci/secrets.baseline <same --exclude-secrets>
#   .venv-secrets/bin/detect-secrets audit scripts/ci/secrets.baseline    # mark false positives
# A real secret must be removed from the history and rotated, never baselined.
#
# Environment: PYTHON=python3 (to create the venv), DETECT_SECRETS_SPEC='detect-secrets==1.5.0'.  # pragma: allowlist secret
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
exec </dev/null

PYTHON="${PYTHON:-python3}"
SPEC="${DETECT_SECRETS_SPEC:-detect-secrets==1.5.0}"
VENV="$ROOT/.venv-secrets"
BASELINE="scripts/ci/secrets.baseline"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

AZURITE_DEV_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
EXCLUDES=(
  --exclude-secrets "^${AZURITE_DEV_KEY//\//\\/}\$"
  --exclude-secrets '^local$'
  # the baseline stores hashes of audited false positives: hex strings by design
  --exclude-files '^scripts/ci/secrets\.baseline$'
)

if [[ ! -x "$VENV/bin/detect-secrets" ]]; then
  echo "==> creating .venv-secrets with $SPEC"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet "$SPEC"
fi
DS="$VENV/bin/detect-secrets"
echo "==> detect-secrets $("$DS" --version) over $(git ls-files | wc -l) tracked files"

# 1. The scanner must still find a planted secret (a broken install must not pass silently).
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYzz9"\n' >"$probe/planted.txt"  # pragma: allowlist secret
(cd "$probe" && "$DS" scan --all-files planted.txt) >"$probe/probe.json"
"$VENV/bin/python" - "$probe/probe.json" <<'PY'
import json, sys
if not json.load(open(sys.argv[1]))["results"]:
    sys.exit("secret_scan: the scanner did not find the planted probe secret; refusing to pass")
PY

# 2. Scan every tracked file (detect-secrets lists them with git ls-files).
"$DS" scan "${EXCLUDES[@]}" >"$probe/scan.json"
"$VENV/bin/python" - "$probe/scan.json" "$BASELINE" <<'PY'
import json, sys
scan = json.load(open(sys.argv[1]))["results"]
audited = {
    (f, r["hashed_secret"])
    for f, rs in json.load(open(sys.argv[2]))["results"].items()
    for r in rs
    if r.get("is_secret") is False
}
findings = [(f, r) for f, rs in scan.items() for r in rs if (f, r["hashed_secret"]) not in audited]
for f, r in findings:
    print(f"secret_scan: {f}:{r['line_number']}: {r['type']}", file=sys.stderr)
allowed = sum(len(rs) for rs in scan.values()) - len(findings)
if findings:
    sys.exit(f"secret_scan: {len(findings)} finding(s); remove them (and rotate), or audit a false positive")
print(f"secret_scan: no secrets ({allowed} audited false positive(s) in {sys.argv[2]})")
PY
