"""The `facearith` console command: ask a trained pipeline."""

from __future__ import annotations

import argparse
import json

from facearith.query import run_query
from facearith.runner import guard


def _table(results: list[dict]) -> str:
    cols = ["rank", "person", "expression", "split", "distance", "path"]
    rows = [[str(r[c]) if c != "distance" else f"{r[c]:.4f}" for c in cols] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _query(args: argparse.Namespace) -> None:
    answer = run_query(args)
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    q = answer["query"]
    if "image" in q:
        how = "inferred" if q["minus_inferred"] else "given"
        print(f"{q['image']}: expression {q['minus']} ({how}) -> {q['plus']}")
    else:
        print(f"{q['person']} + {q['expression']}")
    print(_table(answer["results"]))
    if args.out:
        print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    """The `facearith` console command."""
    ap = argparse.ArgumentParser(prog="facearith", description="Ask a trained facearith pipeline.")
    sub = ap.add_subparsers(dest="command", required=True)
    q = sub.add_parser("query", help="a person with an expression, or an image with another expression")
    q.add_argument("--person", help="person (identity) label, e.g. KA")
    q.add_argument("--expression", help="expression (attribute) label, e.g. HA")
    q.add_argument("--image", help="an image file (any format Pillow reads), in the dataset or not")
    q.add_argument("--plus", help="with --image: the expression to show")
    q.add_argument("--minus", help="with --image: the image's own expression (default: inferred)")
    q.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--out", help="write the query and its results as one PNG strip")
    q.add_argument("--root", default=".", help="the pipeline's folder (default: here)")
    s = sub.add_parser("serve", help="a local search service and web page over the built pipeline")
    s.add_argument("--root", default=".", help="the pipeline's folder (default: here)")
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="the port (default 8000; 0: any free one)")
    s.add_argument("--max-upload-mb", type=float, default=5.0, help="the largest image accepted (default 5)")
    s.add_argument("--busy-wait-s", type=float, default=5.0, help="how long a request waits its turn (default 5)")
    s.add_argument("--max-k", type=int, default=50, help="the most results one question may ask for (default 50)")
    args = ap.parse_args(argv)
    if args.command == "serve":
        from facearith.serve import serve  # the web framework only for the service, not for `facearith query`

        guard("facearith serve", lambda: serve(args))
        return
    if args.k < 1:
        ap.error("-k must be at least 1")
    if args.image and (args.person or args.expression):
        ap.error("use either --person/--expression or --image/--plus")
    guard("facearith", lambda: _query(args))
