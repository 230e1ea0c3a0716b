"""Stage data: materialise the raw image set chosen by data.source."""

import _bootstrap  # noqa: F401  (this checkout's src/ first)

from facearith import config, runner
from facearith.data import sources


def main(args) -> None:
    p = config.load(args.params).data
    names, skipped = sources.materialise(p, args.out, cache_dir=args.downloads)
    if skipped:
        print(f"data: {len(skipped)} files in {p.folder.path} are not images and were not copied: {skipped[:5]}")
    print(f"data: {len(names)} images from '{p.source}' in {args.out}")


if __name__ == "__main__":
    runner.stage("data", main, __doc__, "params", "out", "downloads")
