"""Stage data: materialise the raw image set chosen by data.source into data/raw."""

import argparse

from facearith import cli, config, data, synthetic
from facearith.fsutil import atomic_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/raw")
    args = ap.parse_args()
    p = config.load(args.params)["data"]
    if p["source"] == "synthetic":
        s = p["synthetic"]
        with atomic_dir(args.out) as tmp:
            names = synthetic.generate(tmp, s["persons"], s["images_per_pair"], s["size"], s["seed"])
    elif p["source"] == "folder":
        names, skipped = data.copy_folder(p["folder"]["path"], args.out)
        if skipped:
            where = p["folder"]["path"]
            print(f"data: {len(skipped)} files in {where} are not images and were not copied: {skipped[:5]}")
    else:
        j = p["jaffe"]
        names = data.fetch_jaffe(
            args.out,
            archive=j["archive"],
            url=j["url"],
            sha256=j["sha256"],
            token_env=j["token_env"],
            cache_dir="data/downloads",
        )
    print(f"data: {len(names)} images from '{p['source']}' in {args.out}")


if __name__ == "__main__":
    cli.run(main, "data")
