"""`make bench`: `facearith serve`'s latency beside the command's cold start, over a built pipeline.

Warm latency (p50, p99) of name questions (`/api/compose`) and image questions (an uploaded image, `POST
/api/transfer`), from one client and from 4 concurrent ones; then `facearith query` as a new process each time,
by names and with an image: the same questions, the cost of starting. Writes benchmarks/serve.json.

    python benchmarks/serve.py --root .            # after make repro
    python benchmarks/serve.py --root . --quick    # a few requests of each kind (tests)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BIN = Path(sys.executable).parent


def upload(url: str, image: Path, plus: str) -> urllib.request.Request:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="plus"\r\n\r\n{plus}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{image.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + image.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return urllib.request.Request(f"{url}/api/transfer", data=body, headers=kind)


def latencies(make_request, n: int, clients: int) -> dict:
    """`n` requests from each of `clients` threads, each waiting for its answer; milliseconds."""
    times: list[float] = []

    def client() -> None:
        for i in range(n):
            start = time.perf_counter()
            with urllib.request.urlopen(make_request(i), timeout=120) as r:
                r.read()
            times.append((time.perf_counter() - start) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - start
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {"clients": clients, "requests": len(times), "p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(p99, 2), "requests_per_second": round(len(times) / wall, 1)}  # fmt: skip


def cold(root: Path, args: list[str], runs: int) -> dict:
    """`facearith query` as a new process: the median wall time of `runs`."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(BIN / "facearith"), "query", "--root", str(root), "--json", *args],
                       check=True, capture_output=True)  # fmt: skip
        seconds.append(time.perf_counter() - start)
    return {"runs": runs, "median_s": round(statistics.median(seconds), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="a pipeline that has run (make repro)")
    ap.add_argument("--quick", action="store_true", help="a few requests of each kind")
    ap.add_argument("--out", default=str(HERE / "serve.json"))
    args = ap.parse_args()
    from run import machine

    root = Path(args.root).resolve()
    table = (root / "data/prepared/table.csv").read_text().splitlines()[1:]
    person, image = table[0].split(",")[1], root / table[0].split(",")[0]
    names, images, runs = (20, 5, 1) if args.quick else (250, 50, 3)
    proc = subprocess.Popen([str(BIN / "facearith"), "serve", "--root", str(root), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        url = next(
            line.split("listening on ", 1)[1].split()[0].rstrip("/") for line in proc.stdout if "listening" in line
        )
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        expressions = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]

        def name(i: int) -> str:
            return f"{url}/api/compose?person={person}&expression={expressions[i % 7]}&k=5"

        def picture(i: int) -> urllib.request.Request:
            return upload(url, image, expressions[i % 7])

        latencies(name, 5, 1), latencies(picture, 2, 1)  # warm: first uses of the index and the network
        report = {
            "machine": machine(),
            "name": [latencies(name, names, 1), latencies(name, names // 4, 4)],
            "image": [latencies(picture, images, 1), latencies(picture, images // 4 or 1, 4)],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    report["cli_cold"] = {
        "name": cold(root, ["--person", person, "--expression", "HA"], runs),
        "image": cold(root, ["--image", str(image), "--plus", "HA"], runs),
    }
    print(json.dumps(report, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
