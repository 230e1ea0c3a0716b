"""`make bench`: the seed's way against the project's, side by side in one run, on the same data and machine.

Every measurement runs in a fresh Python process (`--part ...`): the allocator setting the project makes is
process-wide, and the seed's way must run as the seed ran. The figures, the ratios and whether each target of
the speed issue is met go to benchmarks/results.json; benchmarks/README.md explains them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# the seed's training recipe, as the project's params (README: "the seed's recipe")
SEED_AUGMENT = {"crop_scale": (0.75, 1.0), "jitter": (0.3, 0.5, 0.5, 0.0), "hflip": True, "degrees": 0.5, "shear": 0.5}


def seed_recipe(train_params, size: int, epochs: int, **over):
    """The seed's training recipe on top of the committed params: its augmentations, Adam at 1e-4, no BatchNorm
    re-estimation; `over` sets anything else."""
    from facearith import config

    augment = config.AugmentParams(**SEED_AUGMENT)
    return replace(train_params, image_size=size, augment=augment, lr=1e-4, epochs=epochs, recalibrate_bn=False, **over)


TARGETS = {"train_128": 2.0, "train_256": 3.0, "extract": 3.0, "search_100000": 10.0, "recall_at_10": 0.95}


# ---------------------------------------------------------------- data


def make_images(dest: Path, size: int = 256, persons: int = 10, per_pair: int = 3) -> Path:
    """JAFFE-shaped data: 10 persons x 7 expressions x 3 grey TIFFs of 256 px; returns a table CSV."""
    import pandas as pd

    from facearith import config
    from facearith.data import labels, synthetic

    pattern = config.load(HERE.parent / "params.yaml").prepare.pattern
    names = synthetic.generate(dest, persons=persons, images_per_pair=per_pair, size=size, seed=0)
    rows = []
    for name in names:
        parsed = labels.parse_name(name, pattern)
        rows.append({"path": str(dest / name), "person": parsed.identity, "expression": parsed.attribute})
    table = pd.DataFrame(rows)
    table["selected"] = ~table.duplicated(["person", "expression"])  # one image per pair, as the seed trains
    path = dest / "table.csv"
    table.to_csv(path, index=False)
    return path


def clustered_vectors(n: int, dim: int = 1280, clusters: int = 1000, latent: int = 32, seed: int = 0) -> np.ndarray:
    """Non-negative unit vectors with structure, like pooled CNN features: Gaussian clusters in a 32-d latent
    space, mapped to `dim` dimensions by a fixed random layer with noise, then ReLU and L2 normalisation."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((latent, dim), dtype=np.float32)
    centers = rng.standard_normal((clusters, latent), dtype=np.float32)
    z = centers[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, latent), dtype=np.float32)
    x = np.maximum(z @ w + 0.5 * rng.standard_normal((n, dim), dtype=np.float32), 0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- parts (each in its own process)


def part_train(args: argparse.Namespace) -> dict:
    import pandas as pd

    table = pd.read_csv(args.table)
    table = table[table.selected].reset_index(drop=True)
    import seed_way

    if args.way == "seed":
        return seed_way.train_images_per_second(table, args.size, args.epochs)
    import torch

    from facearith import config
    from facearith.data.images import load_images
    from facearith.training import loop, network

    device = torch.device(args.device)
    committed = config.load(HERE.parent / "params.yaml")
    params = seed_recipe(
        committed.train, args.size, args.epochs, sampler=args.sampler, workers=args.workers, forward_chunk=args.chunk
    )
    loop.seed_everything(0)
    start = time.perf_counter()
    images = load_images(table.path.tolist())  # decoded once, before training
    decode = time.perf_counter() - start
    net = network.build(committed.model, 70, table.person.nunique(), table.expression.nunique())
    marks: list[tuple[float, int]] = []

    def mark(epoch: int, loss: float) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), (epoch + 1) * len(table)))  # every image is an anchor once per epoch

    result = loop.train(
        net, images, table.person.to_numpy(), table.expression.to_numpy(), params, device, mark, progress=False
    )
    per_anchor = result.images_seen / result.anchors_seen  # 1 (blocks) or 3 (the seed's triplet batches)
    rate = seed_way.rate([(t, round(a * per_anchor)) for t, a in marks], images_per_anchor=per_anchor)
    return {**rate, "decode_s": decode}


def timed_passes(extract_all: Callable[[], np.ndarray], passes: int) -> dict:
    """Time a cold pass (the process's first: oneDNN builds its kernels, the heap grows), then `passes` warm
    ones; images/s is the median warm pass, as training leaves out its first epoch. Each pass decodes too."""
    seconds, images = [], 0
    for _ in range(1 + passes):
        start = time.perf_counter()
        images = len(extract_all())
        seconds.append(time.perf_counter() - start)
    warm = statistics.median(seconds[1:])
    return {
        "images_per_second": images / warm,
        "cold_images_per_second": images / seconds[0],
        "seconds": warm,
        "cold_seconds": seconds[0],
        "images": images,
        "passes": passes,
    }


def part_extract(args: argparse.Namespace) -> dict:
    import pandas as pd

    paths = pd.read_csv(args.table).path.tolist()
    if args.way == "seed":
        import seed_way

        net = seed_way.make_model().eval()
        return timed_passes(lambda: seed_way.extract(net, paths, args.size), args.passes)
    from facearith import config
    from facearith.data.images import load_images
    from facearith.features import extract
    from facearith.training import network

    committed = config.load(HERE.parent / "params.yaml")
    net = network.build(committed.model, 70, 10, 7)
    batch_size = committed.features.batch_size
    return timed_passes(lambda: extract.extract(net, load_images(paths), args.size, batch_size, "cpu"), args.passes)


def part_search(args: argparse.Namespace) -> dict:
    from dataclasses import replace

    import seed_way

    from facearith import config
    from facearith.search import backends

    k, n_queries = 10, args.queries
    vectors = clustered_vectors(args.n + n_queries)
    data, queries = vectors[: args.n], vectors[args.n :]
    start = time.perf_counter()
    truth = seed_way.exact_search(data, queries, k)
    exact_s = time.perf_counter() - start
    # the same exact answer for all queries at once (one BLAS product): a stronger baseline, reported beside
    start = time.perf_counter()
    scores = queries @ data.T
    np.argpartition(-scores, k, axis=1)
    batched_s = time.perf_counter() - start
    ip = config.load(HERE.parent / "params.yaml").index
    out = {
        "n": args.n,
        "dim": data.shape[1],
        "queries": n_queries,
        "exact": {"queries_per_second": n_queries / exact_s, "seconds": exact_s},
        "exact_batched": {"queries_per_second": n_queries / batched_s, "seconds": batched_s},
        "ngt": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # ngtpy's default of 8 inserting threads, as the committed build times were measured (the pipeline uses 1)
        backends.build(data, Path(tmp) / "index", replace(ip, backend="ngt", build_threads=8), {})
        out["ngt_build_seconds"] = time.perf_counter() - start
        searcher = backends.open_index(Path(tmp) / "index")
        for epsilon in sorted({0.0, 0.05, 0.1, 0.2, ip.epsilon}):  # and the committed one (params.yaml)
            searcher.epsilon = epsilon
            start = time.perf_counter()
            ids, _ = searcher.search(queries, k)
            seconds = time.perf_counter() - start
            recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth, strict=True)]))
            out["ngt"].append(
                {
                    "edge_size_for_creation": ip.edge_size_for_creation,
                    "edge_size_for_search": ip.edge_size_for_search,
                    "epsilon": epsilon,
                    "queries_per_second": n_queries / seconds,
                    "recall_at_10": recall,
                }
            )
    return out


def part_step(args: argparse.Namespace) -> dict:
    """The 256 px cliff: the seed's network alone, one training step of 16 images, by layout and allocator."""
    import seed_way
    import torch

    from facearith.runtime import tune_allocator

    if args.allocator == "tuned":
        tune_allocator()
    torch.manual_seed(0)
    net = seed_way.make_model().train()
    x = torch.rand(16, 3, args.size, args.size)
    if args.layout == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for _ in range(args.steps + 1):  # the first step warms up
        start = time.perf_counter()
        loss = net(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"images_per_second": 16 * args.steps / sum(times[1:])}


PARTS = {"train": part_train, "extract": part_extract, "search": part_search, "step": part_step}


# ---------------------------------------------------------------- orchestration


def run_part(name: str, **kwargs) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name]
    for key, value in kwargs.items():
        cmd += [f"--{key}", str(value)]
    label = " ".join(cmd[3:])
    print(f"bench: {label} ...", end=" ", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"\nbench: {label} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "anchors_per_second" in result:
        print(f"{result['images_per_second']:.1f} images/s, {result['anchors_per_second']:.1f} anchors/s", flush=True)
    elif "images_per_second" in result:
        print(f"{result['images_per_second']:.1f} images/s", flush=True)
    else:
        print("done", flush=True)
    return result


def extract_rounds(table: Path, size: int, rounds: int, passes: int) -> dict:
    """The seed's and the project's extraction in alternating processes, `rounds` times: this VM's speed drifts
    by 15-30% over minutes, and a ratio of two runs taken side by side cancels most of it. The figures are
    medians over the rounds, of each round's median warm pass (and of its cold first pass)."""
    pairs = []
    for _ in range(rounds):
        seed = run_part("extract", way="seed", table=table, size=size, passes=passes)
        project = run_part("extract", way="project", table=table, size=size, passes=passes)
        pairs.append({"seed": seed, "project": project, "ratio": ratio(project, seed)})

    def median_of(way: str) -> dict:
        keys = ("images_per_second", "cold_images_per_second", "seconds", "cold_seconds")
        return {
            **{k: statistics.median(p[way][k] for p in pairs) for k in keys},
            "images": pairs[0][way]["images"],
            "passes": passes,
        }

    return {
        "size": size,
        "seed": median_of("seed"),
        "project": median_of("project"),
        "ratio": statistics.median(p["ratio"] for p in pairs),
        "ratio_cold": statistics.median(ratio(p["project"], p["seed"], "cold_images_per_second") for p in pairs),
        "rounds": [
            {"seed": p["seed"]["images_per_second"], "project": p["project"]["images_per_second"], "ratio": p["ratio"]}
            for p in pairs
        ],
    }


def dataset(params, archive: str, tmp: str | Path):
    """(table, every image decoded) of JAFFE from `archive`, or of the synthetic default when it is "", prepared
    under the folder `tmp` as the prepare stage splits it."""
    from facearith.data import sources, splits, synthetic
    from facearith.data.images import load_images

    raw = Path(tmp) / "raw"
    if archive:
        sources.fetch_jaffe(raw, archive=archive)
    else:
        s = params.data.synthetic
        synthetic.generate(raw, s.persons, s.images_per_pair, s.size, seed=s.seed, nuisance=s.nuisance)
    table, _ = splits.prepare_table(raw, params.prepare)
    return table, load_images(table.path.tolist())


def training_rows(params, archive: str):
    """(images, identities, attributes, persons, expressions) of the training rows that the prepare stage selects,
    of JAFFE from `archive` or of the synthetic default: what one training run of the defaults sees."""
    with tempfile.TemporaryDirectory() as tmp:
        table, every = dataset(params, archive, tmp)
    sel = table.selected.to_numpy()
    rows = table[sel]
    images = [img for img, keep in zip(every, sel, strict=True) if keep]
    labels = rows.identity.to_numpy(), rows.attribute.to_numpy()
    return images, *labels, table.identity.nunique(), table.attribute.nunique()


def emit(report: dict, out: str) -> None:
    """The report as JSON on stdout, and in `out` when given."""
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def machine() -> dict:
    import torch

    # the model name alone does not tell this workplace's 2-core kinds apart: family, model and the vector unit do
    info = {"model name": platform.processor()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        first = cpuinfo.read_text().split("\n\n")[0]  # the first processor's block
        for line in first.splitlines():
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    flags = set(info.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "")
    bf16 = " with bfloat16" if "avx512_bf16" in flags else ""
    if "amx_bf16" in flags:  # Intel's bfloat16 matrix tiles (benchmarks/precision.py: no faster here)
        bf16 += " and AMX"
    return {
        "cpu": info["model name"],
        "cpu_family": info.get("cpu family", ""),
        "cpu_model": info.get("model", ""),
        "vector_unit": vector + bf16,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def warm_epoch_seconds(epoch_seconds: list[float]) -> float:
    """A run's steady epoch time: the median of its second half, past a device's first-epoch stalls."""
    return statistics.median(epoch_seconds[len(epoch_seconds) // 2 :])


def ratio(project: dict, seed: dict, key: str = "images_per_second") -> float:
    return round(project[key] / seed[key], 2)


def best_ngt(search: dict) -> dict | None:
    """The fastest NGT setting that reaches the recall target."""
    ok = [s for s in search["ngt"] if s["recall_at_10"] >= TARGETS["recall_at_10"]]
    return max(ok, key=lambda s: s["queries_per_second"]) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that every part runs (for tests)")
    ap.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    for name in ("way", "table", "layout", "allocator", "device", "sampler"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("size", "epochs", "workers", "chunk", "n", "queries", "steps", "passes"):
        ap.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return

    from facearith.fsutil import write_json

    start = time.perf_counter()
    if args.quick:
        sizes, n_search, queries, cliff = {64: (2, 2)}, [2000], 20, []
    else:
        # (seed epochs, project epochs) per size: the first epoch warms up and is not counted
        sizes, n_search, queries, cliff = {128: (4, 5), 256: (3, 4)}, [10_000, 100_000], 200, [224, 256]
    results: dict = {"machine": machine(), "train": {}, "extract": {}, "search": {}, "cliff_256px": []}
    with tempfile.TemporaryDirectory() as tmp:
        table = make_images(Path(tmp) / "images", size=256, persons=3 if args.quick else 10)
        for size, (seed_epochs, project_epochs) in sizes.items():
            seed = run_part("train", way="seed", table=table, size=size, epochs=seed_epochs)
            row: dict = {"seed": seed}
            # the project's default (blocks: each image through the network once per epoch, one pass per batch),
            # and the seed's triplet batches in the project's loop: one pass of 48, and passes of 16
            variants = (("blocks", "blocks", 0), ("chunk0", "triplets", 0), ("chunk16", "triplets", 16))
            for name, sampler, chunk in variants:
                row[f"project_{name}"] = run_part(
                    "train",
                    way="project",
                    table=table,
                    size=size,
                    epochs=project_epochs,
                    workers=0,
                    chunk=chunk,
                    sampler=sampler,
                    device="cpu",
                )
                row[f"ratio_{name}"] = ratio(row[f"project_{name}"], seed, "anchors_per_second")
                row[f"ratio_{name}_forward"] = ratio(row[f"project_{name}"], seed)
            row["ratio"] = max(row[f"ratio_{name}"] for name, _, _ in variants)
            results["train"][str(size)] = row
        size = 64 if args.quick else 256
        results["extract"] = extract_rounds(table, size, rounds=1 if args.quick else 3, passes=1 if args.quick else 2)
    for n in n_search:
        search = run_part("search", n=n, queries=queries)
        chosen = best_ngt(search)
        search["chosen"] = chosen
        search["ratio"] = (
            round(chosen["queries_per_second"] / search["exact"]["queries_per_second"], 1) if chosen else None
        )
        results["search"][str(n)] = search
    for size in cliff:
        for layout in ("nchw", "channels_last"):
            for allocator in ("default", "tuned"):
                step = run_part("step", size=size, layout=layout, allocator=allocator, steps=3)
                results["cliff_256px"].append({"size": size, "layout": layout, "allocator": allocator, **step})
    results["targets"] = targets(results)
    results["seconds"] = round(time.perf_counter() - start, 1)
    write_json(args.out, results)
    for name, t in results["targets"].items():
        print(f"bench: {name}: {t['value']} (target {t['target']}): {'met' if t['met'] else 'NOT MET'}")
    print(f"bench: wrote {args.out} in {results['seconds']:.0f} s")


def targets(results: dict) -> dict:
    """Each target of the speed issue, as measured in this run."""
    out = {}
    for size in results["train"]:
        key = f"train_{size}"
        value = results["train"][size]["ratio"]
        out[f"training {size} px, project/seed training images (anchors)/s"] = {
            "value": value,
            "target": TARGETS.get(key, 1.0),
        }
    out["extraction, batched/batch-1 images/s"] = {"value": results["extract"]["ratio"], "target": TARGETS["extract"]}
    for n, search in results["search"].items():
        value = search["ratio"] or 0.0
        target = TARGETS.get(f"search_{n}", 1.0)
        out[f"search N={n}, NGT/exact queries/s at recall@10 >= 0.95"] = {"value": value, "target": target}
    for t in out.values():
        t["met"] = t["value"] >= t["target"]
    return out


if __name__ == "__main__":
    main()
