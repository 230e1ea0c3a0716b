"""Stage prepare: the labelled table of the raw images, with the images chosen for training and the index."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)

from facearith import config, runner
from facearith.data import splits
from facearith.fsutil import atomic_path


def main(args) -> None:
    table, skipped = splits.prepare_table(args.raw, config.load(args.params).prepare)
    if skipped:
        print(f"prepare: {len(skipped)} files do not match prepare.pattern and were left out, e.g. {skipped[:5]}")
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    n_sel = int(table["selected"].sum())
    print(
        f"prepare: {len(table)} images, {table.identity.nunique()} persons x {table.attribute.nunique()} expressions, "
        f"{n_sel} selected"
    )


if __name__ == "__main__":
    runner.stage("prepare", main, __doc__, "params", "raw", "out")
