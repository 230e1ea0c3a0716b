"""Imported first by every stage script: puts the src/ beside this folder ahead of the installed facearith.

`pip install -e .` points at the working tree it was run in. A `dvc exp run --queue` (or `--temp`) experiment
runs in a copy of the repository, and without this its stages would import the working tree's library as it
is when the experiment runs, not the copy that was queued, while dvc.lock recorded the copy's hashes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
