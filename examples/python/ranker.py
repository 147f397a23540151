#!/usr/bin/env python3
"""A small ranker client for Tessera's gRPC API (tessera.v1.Entities), as an example.

    python ranker.py --addr 127.0.0.1:50051 --token "$TOKEN" get tt-0001 tt-0002
    python ranker.py --addr 127.0.0.1:50051 schema
    python ranker.py --addr 127.0.0.1:50051 search --vector text --entity tt-0001 --limit 5
    python ranker.py --addr 127.0.0.1:50051 search --vector text --text "a heist" --year-min 2010
    python ranker.py --addr 127.0.0.1:50051 lookup 12-200-7
    python ranker.py --addr 127.0.0.1:50051 scan --page-size 500

The part to copy is the `Tessera` class: one channel, the bearer token sent as call metadata, a
deadline on every call, and a scan that resumes from its cursor. The rest is the command line.
The stubs in tessera/v1/ are generated from host/proto/tessera/v1/entities.proto (generate.sh).
"""

from __future__ import annotations

import argparse
import array
import json
import os
import sys
from typing import Iterator

import grpc

from tessera.v1 import entities_pb2 as pb
from tessera.v1 import entities_pb2_grpc as pb_grpc


class Tessera:
    """A client for one Tessera server. Create one per process and reuse it: the channel keeps
    its connection open, and gRPC channels are safe to share between threads."""

    def __init__(self, addr: str, token: str | None = None, timeout: float = 10.0):
        # Plain TCP (no TLS), as `tessera serve` listens; use grpc.secure_channel behind a
        # TLS-terminating proxy.
        self.channel = grpc.insecure_channel(addr)
        self.stub = pb_grpc.EntitiesStub(self.channel)
        # With `tessera serve --tokens-file`, every Entities call needs this header; without a
        # token the server answers UNAUTHENTICATED.
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        # Seconds a call may take before it fails with DEADLINE_EXCEEDED. Always set one: a call
        # without a deadline waits forever on a server that hangs.
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def get(
        self,
        ids: list[str],
        vector_names: list[str] | None = None,
        min_tag_confidence: float = 0.0,
        packed: bool = False,
    ):
        """One result per id, in order; an unknown id is a result with found = False. With
        packed=True vectors come as little-endian float32 bytes (read them with `floats`):
        far cheaper to encode and decode than repeated floats."""
        request = pb.GetEntitiesRequest(
            ids=ids,
            vector_names=vector_names,
            min_tag_confidence=min_tag_confidence,
            packed_vectors=packed,
        )
        response = self.stub.GetEntities(request, timeout=self.timeout, metadata=self.metadata)
        return list(response.results)

    def search(
        self,
        vector_name: str,
        *,
        entity_id: str | None = None,
        text: str | None = None,
        vector: list[float] | None = None,
        limit: int = 10,
        filter: pb.SearchFilter | None = None,
    ):
        """Nearest titles on one named vector, best first. Give exactly one query: a stored title
        (left out of its own results), a text (embedded by the server), or a vector."""
        request = pb.SearchRequest(vector_name=vector_name, limit=limit, filter=filter)
        if entity_id is not None:
            request.entity_id = entity_id
        elif text is not None:
            request.text = text
        elif vector is not None:
            request.vector.values.extend(vector)
        else:
            raise ValueError("search needs a query: entity_id, text or vector")
        response = self.stub.Search(request, timeout=self.timeout, metadata=self.metadata)
        return list(response.hits)

    def schema(self) -> pb.GetSchemaResponse:
        """The store's named vectors (name, modality, model@revision, dimension, kind)."""
        return self.stub.GetSchema(
            pb.GetSchemaRequest(), timeout=self.timeout, metadata=self.metadata
        )

    def vector_name(self, name_or_modality: str) -> str:
        """The full vector name for `name_or_modality`: itself when the store has a vector of that
        name, else the one dense vector of that modality ("text" gives
        "text/all-MiniLM-L6-v2@c9745ed1d9f2"). Names carry the model revision, so a ranker that
        pins a full name is refused (INVALID_ARGUMENT) by a store made with another revision
        instead of silently comparing vectors of two models."""
        vectors = self.schema().vectors
        if any(v.name == name_or_modality for v in vectors):
            return name_or_modality
        dense = [v.name for v in vectors if v.modality == name_or_modality and v.kind == "dense"]
        if len(dense) != 1:
            known = ", ".join(v.name for v in vectors) or "none"
            raise ValueError(
                f"{name_or_modality!r} names {len(dense)} dense vectors of the store (it has: {known})"
            )
        return dense[0]

    def lookup(self, semantic_ids: list[list[int]], limit_per_query: int = 0):
        """Per query (a full semantic ID or a prefix), the titles it matches."""
        request = pb.LookupSemanticIdsRequest(
            queries=[pb.SemanticIdQuery(codes=codes) for codes in semantic_ids],
            limit_per_query=limit_per_query,
        )
        response = self.stub.LookupSemanticIds(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return [list(result.matches) for result in response.results]

    def scan(self, page_size: int = 256, skip_vectors: bool = False) -> Iterator[pb.ScanEntitiesResponse]:
        """Every stored title, a page at a time.

        The deadline covers one stream, not the whole scan: when a stream is cut (deadline,
        server restart, network), the scan reopens it from the last cursor received, so a scan
        longer than one deadline still completes, without gaps or repeats. A stream that fails
        before delivering any page fails the scan."""
        cursor = ""
        while True:
            request = pb.ScanEntitiesRequest(
                cursor=cursor, page_size=page_size, skip_vectors=skip_vectors
            )
            progressed = False
            try:
                for page in self.stub.ScanEntities(
                    request, timeout=self.timeout, metadata=self.metadata
                ):
                    yield page
                    progressed = True
                    cursor = page.next_cursor
                    if not cursor:
                        return
                return  # the server ended the stream: nothing more to read
            except grpc.RpcError as error:
                resumable = error.code() in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNAVAILABLE,
                )
                if not (resumable and progressed):
                    raise

    def changes(self, after_seq: int = 0, follow: bool = False) -> Iterator[pb.EntityChange]:
        """The change feed: titles' latest changes after `after_seq`, in order. Keep the last
        `seq` you processed and pass it next time to resume. With follow=True the stream stays
        open (no deadline then: it is meant to run until you stop reading)."""
        request = pb.WatchEntitiesRequest(after_seq=after_seq, follow=follow)
        timeout = None if follow else self.timeout
        for message in self.stub.WatchEntities(request, timeout=timeout, metadata=self.metadata):
            yield from message.changes


# ---- helpers for printing -------------------------------------------------------------------


def floats(vector: pb.Vector) -> list[float]:
    """A vector's floats, sent as repeated floats or packed (`numpy.frombuffer(vector.packed,
    "<f4")` does the same without a copy)."""
    if vector.packed:
        values = array.array("f")
        values.frombytes(vector.packed)
        if sys.byteorder == "big":
            values.byteswap()
        return values.tolist()
    return list(vector.values)


def format_sid(codes) -> str:
    return "-".join(str(code) for code in codes)


def parse_sid(text: str) -> list[int]:
    try:
        return [int(code) for code in text.split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid semantic ID {text!r} (expected e.g. 12-200-7)")


def vector_dims(entity: pb.Entity) -> dict[str, str]:
    """Vector name to its shape: "384" for a dense vector, "5x512" for 5 token vectors."""
    dims = {name: str(len(vector.values)) for name, vector in entity.vectors.items()}
    for name, multi in entity.multivectors.items():
        width = len(multi.tokens[0].values) if multi.tokens else 0
        dims[name] = f"{len(multi.tokens)}x{width}"
    return dict(sorted(dims.items()))


def format_tag(tag: pb.Tag) -> str:
    name = f"{tag.name}={tag.value}" if tag.HasField("value") else tag.name
    return f"{name} ({tag.confidence:.2f}, {tag.plugin})"


def search_filter(args) -> pb.SearchFilter | None:
    """The --year-min/--language/--tag options as a SearchFilter (None when none is given)."""
    if args.year_min is None and not args.language and not args.tag:
        return None
    tags = []
    for tag in args.tag:
        name, has_value, value = tag.partition("=")
        tags.append(pb.TagFilter(name=name, value=value) if has_value else pb.TagFilter(name=name))
    return pb.SearchFilter(year_min=args.year_min, languages=args.language, tags=tags)


# ---- commands -------------------------------------------------------------------------------


def cmd_get(client: Tessera, args) -> None:
    for result in client.get(args.ids):
        if not result.found:
            print(f"{result.id}: not found")
            continue
        entity = result.entity
        print(f"{entity.id}: {entity.name!r} ({entity.year or 'year?'}, {entity.language or 'language?'})")
        dims = vector_dims(entity)
        print("  vectors:", ", ".join(f"{name}[{shape}]" for name, shape in dims.items()) or "none")
        if entity.semantic_id:
            print(f"  semantic id: {format_sid(entity.semantic_id)} ({entity.semantic_id_codebook})")
        else:
            print("  semantic id: none (no codebook trained yet)")
        print("  tags:", "; ".join(format_tag(tag) for tag in entity.tags) or "none")


def cmd_schema(client: Tessera, args) -> None:
    schema = client.schema()
    for v in schema.vectors:
        print(f"{v.name}\t{v.kind}\t{v.dimension}\t{v.model}")
    if schema.fusion:
        print(f"fused by {schema.fusion}")


def cmd_search(client: Tessera, args) -> None:
    hits = client.search(
        client.vector_name(args.vector),
        entity_id=args.entity,
        text=args.text,
        limit=args.limit,
        filter=search_filter(args),
    )
    for hit in hits:
        print(f"{hit.id}\t{hit.score:.4f}")
    if not hits:
        print("no hits", file=sys.stderr)


def cmd_lookup(client: Tessera, args) -> None:
    for sid, matches in zip(args.sids, client.lookup(args.sids)):
        if not matches:
            print(f"{format_sid(sid)}: no titles")
        for match in matches:
            print(f"{format_sid(sid)}: {match.id} ({format_sid(match.semantic_id)}, {match.codebook})")


def cmd_scan(client: Tessera, args) -> None:
    titles = pages = 0
    for page in client.scan(page_size=args.page_size, skip_vectors=True):
        pages += 1
        titles += len(page.entities)
    print(f"{titles} titles in {pages} pages")


def cmd_watch(client: Tessera, args) -> None:
    for change in client.changes(after_seq=args.after, follow=args.follow):
        run = f" run {change.run}" if change.run else ""
        print(f"{change.seq} {change.id}: {', '.join(change.what)}{run}", flush=True)


def cmd_check(client: Tessera, args) -> None:
    """A fixed sequence of calls, summarised as JSON (used by tests/python_client.rs)."""
    get = {}
    plain = client.get(args.ids)
    packed = client.get(args.ids, packed=True)
    for result, packed_result in zip(plain, packed):
        get[result.id] = {"found": result.found}
        if result.found:
            get[result.id]["name"] = result.entity.name
            get[result.id]["dims"] = {
                name: len(floats(vector)) for name, vector in packed_result.entity.vectors.items()
            }
            # Asked for packed, the floats come as bytes only; and they are the same floats.
            get[result.id]["packed_as_bytes"] = all(
                not vector.values and vector.packed
                for vector in packed_result.entity.vectors.values()
            )
            get[result.id]["packed_same"] = all(
                floats(vector) == floats(packed_result.entity.vectors[name])
                for name, vector in result.entity.vectors.items()
            )
    vector = client.vector_name(args.vector)
    hits = client.search(vector, entity_id=args.query, limit=args.limit)
    scanned = []
    pages = 0
    for page in client.scan(page_size=args.page_size, skip_vectors=True):
        pages += 1
        scanned.extend(entity.id for entity in page.entities)
    changes = list(client.changes())
    # The same kind of call without the token: refused when the server requires one.
    anonymous = Tessera(args.addr, token=None, timeout=args.timeout)
    try:
        anonymous.get(args.ids[:1])
        unauthenticated = False
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        unauthenticated = True
    finally:
        anonymous.close()
    print(
        json.dumps(
            {
                "get": get,
                "vector": vector,
                "schema": [[v.name, v.modality, v.model, v.dimension, v.kind] for v in client.schema().vectors],
                "search": [hit.id for hit in hits],
                "scan_count": len(scanned),
                "scan_distinct": len(set(scanned)),
                "scan_pages": pages,
                "changes": [[c.seq, c.id, list(c.what)] for c in changes],
                "unauthenticated": unauthenticated,
            }
        )
    )


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(
        description="Example ranker client for Tessera's gRPC API (tessera.v1.Entities)."
    )
    parser.add_argument("--addr", required=True, help="server address, HOST:PORT")
    parser.add_argument(
        "--token",
        default=os.environ.get("TESSERA_TOKEN"),
        help="bearer token (default: $TESSERA_TOKEN); needed when the server has --tokens-file",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline per call, seconds (default 10)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    get = commands.add_parser("get", help="look up titles by id")
    get.add_argument("ids", nargs="+", metavar="ID")
    get.set_defaults(run=cmd_get)

    schema = commands.add_parser("schema", help="the store's named vectors and their models")
    schema.set_defaults(run=cmd_schema)

    search = commands.add_parser("search", help="nearest titles on a named vector")
    search.add_argument(
        "--vector",
        required=True,
        metavar="NAME",
        help="vector name (see `schema`), or a modality such as text when the store has one",
    )
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--entity", metavar="ID", help="query with a stored title's own vector")
    query.add_argument("--text", help="query with a text the server embeds")
    search.add_argument("--limit", type=int, default=10, help="most hits (default 10)")
    search.add_argument("--year-min", type=int, metavar="Y", help="released in Y or later")
    search.add_argument(
        "--language", action="append", default=[], metavar="L", help="catalog language (repeatable)"
    )
    search.add_argument(
        "--tag", action="append", default=[], metavar="NAME[=VALUE]", help="required tag (repeatable)"
    )
    search.set_defaults(run=cmd_search)

    lookup = commands.add_parser("lookup", help="titles with a semantic ID or prefix")
    lookup.add_argument("sids", nargs="+", type=parse_sid, metavar="SID", help="e.g. 12-200-7 or 12")
    lookup.set_defaults(run=cmd_lookup)

    scan = commands.add_parser("scan", help="stream every title; print how many")
    scan.add_argument("--page-size", type=int, default=256, help="titles per page (default 256)")
    scan.set_defaults(run=cmd_scan)

    watch = commands.add_parser("watch", help="the change feed: what changed, after a seq")
    watch.add_argument("--after", type=int, default=0, metavar="SEQ", help="resume after this seq")
    watch.add_argument("--follow", action="store_true", help="keep listening for new changes")
    watch.set_defaults(run=cmd_watch)

    check = commands.add_parser("check", help="fixed sequence of calls, printed as JSON (tests)")
    check.add_argument(
        "--ids", nargs="+", default=["tt-0001", "tt-0014", "no-such-title"], metavar="ID"
    )
    check.add_argument("--vector", default="text", metavar="NAME")
    check.add_argument("--query", default="tt-0001", metavar="ID", help="search query title")
    check.add_argument("--limit", type=int, default=5)
    check.add_argument("--page-size", type=int, default=4)
    check.set_defaults(run=cmd_check)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    client = Tessera(args.addr, token=args.token, timeout=args.timeout)
    try:
        args.run(client, args)
    except grpc.RpcError as error:
        # Status code and the server's message, e.g. "error: NOT_FOUND: unknown title ...".
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
