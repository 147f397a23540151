#!/usr/bin/env bash
# Regenerates the Python stubs in examples/python/tessera/v1/ from the ranker API's proto.
#
#   bash examples/python/generate.sh [PYTHON]   # PYTHON: an interpreter with requirements.txt
#                                               # installed (default: python3)
#
# The stubs are checked in, so ranker teams only need this after the proto changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto_root="$(cd "$here/../../host/proto" && pwd)"
python="${1:-python3}"

# TESSERA_STUBS_OUT writes elsewhere (the Python client test regenerates into a temp dir and
# compares, so checked-in stubs cannot drift from the proto).
out="${TESSERA_STUBS_OUT:-$here/tessera/v1}"
mkdir -p "$out"
rm -f "$out"/entities_pb2*.py
# Run from the proto root with the path relative to it, so the generated descriptor names the file
# "tessera/v1/entities.proto", as the server's reflection does.
(cd "$proto_root" && "$python" -m grpc_tools.protoc -I . \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  tessera/v1/entities.proto)
# protoc writes the files under their proto path (tessera/v1/...) inside the output folder.
if [ -d "$out/tessera/v1" ]; then
  mv "$out"/tessera/v1/entities_pb2* "$out"/
  rm -rf "$out/tessera"
fi

# The gRPC stub imports its messages as a top-level module ("from tessera.v1 import entities_pb2"
# with this layout, or "import entities_pb2" with others); make it a package-relative import so
# that `import tessera.v1.entities_pb2_grpc` works wherever examples/python sits on sys.path.
"$python" - "$out/entities_pb2_grpc.py" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
fixed = re.sub(r"^(?:from tessera\.v1 )?import entities_pb2 as", "from . import entities_pb2 as",
               text, count=1, flags=re.M)
if "from . import entities_pb2 as" not in fixed:
    sys.exit(f"{path}: did not find the entities_pb2 import to fix")
open(path, "w", encoding="utf-8").write(fixed)
PY

for init in "$out/../__init__.py" "$out/__init__.py"; do
  [ -f "$init" ] || echo '"""Generated gRPC stubs for the Tessera ranker API (see examples/python/generate.sh)."""' >"$init"
done
echo "stubs written to $out"
