#!/usr/bin/env bash
# Creates (or refreshes) a virtual environment with the Python ranker client's dependencies.
#
#   bash examples/python/setup.sh VENV_DIR     # then: VENV_DIR/bin/python examples/python/ranker.py --help
#
# Idempotent: the venv records a hash of requirements.txt and the interpreter's version, and a
# second run with the same ones does nothing. Set PYTHON to choose the interpreter (default python3).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash $0 VENV_DIR" >&2
  exit 2
fi
venv="$1"
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/requirements.txt"
python="${PYTHON:-python3}"

hash_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi
}
want="$({ cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } | hash_of)"
stamp="$venv/.tessera-requirements"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "python env up to date: $venv"
  exit 0
fi

"$python" -m venv "$venv"
# Drop the stamp first: an interrupted install must not look complete next time.
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/python" -c 'import grpc, google.protobuf, grpc_tools' # fail here, not in a test
echo "$want" >"$stamp"
echo "python env ready: $venv ($("$venv/bin/python" --version))"
