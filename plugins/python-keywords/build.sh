#!/usr/bin/env bash
# Builds the Python plugin into a component with componentize-py (pinned, from PyPI), against
# the current contract (wit/v1). The first run creates a virtualenv beside the output.
#
# Usage: plugins/python-keywords/build.sh [OUT.wasm]
#   default OUT: plugins/python-keywords/target/synopsis-keywords.wasm
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/target/synopsis-keywords.wasm}
venv=${TESSERA_COMPONENTIZE_PY_VENV:-$here/target/venv}
if [ ! -x "$venv/bin/componentize-py" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1
fi
mkdir -p "$(dirname "$out")"
cd "$here"
"$venv/bin/componentize-py" --wit-path ../../wit/v1 --world tagger componentize app -o "$out" >&2
echo "$out"
