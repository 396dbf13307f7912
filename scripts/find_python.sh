#!/usr/bin/env bash
# Print the path of a CPython 3.13 interpreter (the Azure Functions runtime this app deploys on), or say in
# one line what to install and exit 1. Looks at python3.13 / python3 on PATH, then pyenv's versions, then
# the usual install prefixes. A pyenv shim that is not active fails its check and is skipped.
set -u
want="3.13"
candidates=(python3.13 python3 python)
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root 2>/dev/null)
  candidates+=("$root"/versions/3.13*/bin/python3.13)
fi
candidates+=("$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13 \
  /opt/homebrew/bin/python3.13)
for c in "${candidates[@]}"; do
  path=$(command -v "$c" 2>/dev/null) || continue
  if "$path" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" >/dev/null 2>&1; then
    "$path" -c "import sys; print(sys.executable)"
    exit 0
  fi
done
echo "Python $want is required (the app's Azure runtime): install it (pyenv install $want, apt install python$want, or python.org), or run make PYTHON=/path/to/python$want" >&2
exit 1
