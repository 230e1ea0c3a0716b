"""Stage prepare: the labelled table of data/raw, with the images chosen for training and the index."""

import argparse

from facearith import cli, config, data
from facearith.fsutil import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--raw", default="data/raw")
    ap.add_argument("--out", default="data/prepared/table.csv")
    args = ap.parse_args()
    p = config.load(args.params)["prepare"]
    table, skipped = data.build_table(args.raw, p["pattern"])
    if skipped:
        print(f"prepare: {len(skipped)} files do not match prepare.pattern and were left out, e.g. {skipped[:5]}")
    table["selected"] = data.select_one_per_pair(table) if p["one_per_pair"] else True
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    n_sel = int(table["selected"].sum())
    print(
        f"prepare: {len(table)} images, {table.identity.nunique()} persons x {table.attribute.nunique()} expressions, "
        f"{n_sel} selected"
    )


if __name__ == "__main__":
    cli.run(main, "prepare")
