"""Generated gRPC stubs for the Tessera ranker API (see examples/python/generate.sh)."""
