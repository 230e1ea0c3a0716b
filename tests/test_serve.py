"""`facearith serve` as a user runs it: the real service on a local port over a tiny trained pipeline, asked
through its JSON API and through its page in headless Chromium (Debian's chromium and chromium-driver)."""

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
MAX_UPLOAD_MB = 0.05  # small, so that a too-large upload is cheap to send


def _start(root: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(BIN / "facearith"), "serve", "--root", str(root), "--port", "0", *flags],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in proc.stdout:  # the address is said once the pipeline is loaded
        lines.append(line)
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].split()[0].rstrip("/")
    raise AssertionError("the service did not start:\n" + "".join(lines))


@pytest.fixture(scope="module")
def service(trained_pipeline):
    proc, url = _start(trained_pipeline, "--max-upload-mb", str(MAX_UPLOAD_MB))
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(url: str, fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    if file:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{file[0]}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + file[1] + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _cli(root: Path, *args: str) -> dict:
    proc = subprocess.run([str(BIN / "facearith"), "query", "--root", str(root), "--json", *args], env=ENV,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_api_answers_as_facearith_query_does(service, trained_pipeline):
    url, _ = service
    status, gallery = _get(f"{url}/api/gallery")
    assert status == 200 and gallery["persons"] == ["BC", "BG", "BJ"] and len(gallery["expressions"]) == 7
    assert len(gallery["images"]) == 42 and len(gallery["cells"]) == 21
    status, answer = _get(f"{url}/api/compose?person=BG&expression=HA&k=4")
    assert (
        status == 200
        and answer["results"] == _cli(trained_pipeline, "--person", "BG", "--expression", "HA", "-k", "4")["results"]
    )
    # an uploaded image: the same top k as the command over the same file
    image = next((trained_pipeline / "data/raw").glob("BJ.SA2.*.tiff"))
    status, answer = _post(f"{url}/api/transfer", {"plus": "HA", "k": "3"}, (image.name, image.read_bytes()))
    cli = _cli(trained_pipeline, "--image", str(image), "--plus", "HA", "-k", "3")
    assert status == 200 and answer["results"] == cli["results"]
    assert answer["query"] == {**cli["query"], "image": image.name}
    # a gallery image by its row, given its own expression
    row = next(i["row"] for i in gallery["images"] if i["path"].endswith(image.name))
    status, answer = _get(f"{url}/api/transfer?row={row}&plus=HA&minus=SA&k=3")
    cli = _cli(trained_pipeline, "--image", str(image), "--plus", "HA", "--minus", "SA", "-k", "3")
    assert status == 200 and answer["results"] == cli["results"]
    with urllib.request.urlopen(f"{url}/api/thumbnail?row={row}", timeout=30) as r:
        assert r.headers["Content-Type"] == "image/png" and r.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("path", "fields", "file", "status", "message"),
    [
        ("/api/compose?person=ZZ&expression=HA", None, None, 400, "unknown person 'ZZ'; known: BC, BG, BJ"),
        ("/api/compose?person=BG", None, None, 400, "give expression"),
        ("/api/compose?person=BG&expression=HA&k=x", None, None, 400, "k must be an integer"),
        ("/api/compose?person=BG&expression=HA&k=0", None, None, 400, "k must be between 1 and 50"),
        ("/api/transfer?row=999&plus=HA", None, None, 400, "row must be between 0 and 41"),
        ("/api/thumbnail?row=-1", None, None, 400, "row must be between 0 and 41"),
        ("/api/nothing", None, None, 404, "Not Found"),
        ("/api/transfer", {"plus": "HA"}, ("notes.txt", b"not an image"), 400, "notes.txt is not an image"),
        ("/api/transfer", {"plus": "XX"}, ("a.tiff", b"x"), 400, "unknown expression 'XX'"),
        ("/api/transfer", {}, ("a.tiff", b"x"), 400, "give plus"),
        ("/api/transfer", {"plus": "HA"}, None, 400, "send the image as the form field 'image'"),
        ("/api/transfer", {"plus": "HA"}, ("big.tiff", b"x" * 60_000), 413, "the limit is 52428"),
    ],
)
def test_a_bad_request_gets_a_4xx_with_a_message_and_the_service_goes_on(service, path, fields, file, status, message):
    url, _ = service
    got, body = _get(url + path) if fields is None else _post(url + path, fields, file)
    assert got == status and message in body["error"]
    assert _get(f"{url}/api/compose?person=BC&expression=SU&k=1")[0] == 200


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def test_four_clients_with_one_request_in_ten_malformed_get_no_5xx_and_memory_stays_flat(service):
    url, proc = service
    good = [f"{url}/api/compose?person={p}&expression={e}&k=3" for p in ("BC", "BG", "BJ") for e in ("HA", "SU", "NE")]
    bad = [f"{url}/api/compose?person=QQ&expression=HA", f"{url}/api/compose?k=-1", f"{url}/api/transfer?row=x&plus=HA"]
    seen: Counter = Counter()
    numbers = itertools.count()  # every tenth request over all clients is malformed

    def client(n: int) -> None:
        for _ in range(n):
            i = next(numbers)
            malformed = i % 10 == 0
            status, body = _get(bad[i % len(bad)] if malformed else good[i % len(good)])
            seen[(malformed, status, bool(body.get("error")))] += 1

    def burst(n: int) -> None:
        threads = [threading.Thread(target=client, args=(n,)) for _ in range(4)]
        [t.start() for t in threads]
        [t.join(timeout=120) for t in threads]

    burst(25)  # the first 100 warm it up
    before = _rss_kb(proc.pid)
    burst(225)  # 1,000 in all
    after = _rss_kb(proc.pid)
    assert sum(seen.values()) == 1000
    # no 5xx, and each malformed request a 4xx with its message
    assert set(seen) <= {(False, 200, False), (True, 400, True)}, seen
    assert seen[(True, 400, True)] == 100
    assert _get(f"{url}/api/compose?person=BJ&expression=FE&k=2")[0] == 200  # and it goes on answering
    assert after <= before * 1.10, (before, after)


def test_a_pipeline_that_has_not_run_is_refused_with_what_to_do(tmp_path):
    shutil.copy(Path(__file__).resolve().parents[1] / "dvc.yaml", tmp_path / "dvc.yaml")
    proc = subprocess.run([str(BIN / "facearith"), "serve", "--root", str(tmp_path), "--port", "0"], env=ENV,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and "has not run yet" in proc.stderr and "make repro" in proc.stderr


def test_the_service_benchmark_reports_latency_and_the_cold_start(trained_pipeline, tmp_path):
    out = tmp_path / "serve.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks/serve.py"
    proc = subprocess.run([sys.executable, str(script), "--root", str(trained_pipeline), "--quick", "--out", str(out)],
                          env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    for kind in ("name", "image"):
        one, four = report[kind]
        assert (one["clients"], four["clients"]) == (1, 4) and 0 < one["p50_ms"] <= one["p99_ms"]
        assert report["cli_cold"][kind]["median_s"] > 0


def test_a_question_that_waits_past_its_turn_gets_429(trained_pipeline):
    from facearith.query import Pipeline
    from facearith.serve import Refused, ServeSettings, Service

    service = Service(Pipeline.open(trained_pipeline), ServeSettings(1 << 20, busy_wait_s=0.2, max_k=50))
    assert service.run(service.compose, "BC", "HA", 2)["results"][0]["rank"] == 1
    with service.lock:  # another question is being answered
        start = time.perf_counter()
        with pytest.raises(Refused, match="busy: another question is being answered") as refused:
            service.run(service.compose, "BC", "HA", 2)
        assert refused.value.status == 429 and time.perf_counter() - start >= 0.2
    assert service.run(service.compose, "BC", "HA", 2)["results"][0]["rank"] == 1
