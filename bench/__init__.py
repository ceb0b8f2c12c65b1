"""Benchmarks: each measures mhchat beside a physical limit of the same machine, same run."""

import sys
from pathlib import Path

# Run from a checkout: the adapters live beside src/ (as pytest's ``pythonpath`` has them), and
# the benchmarks' server processes inherit the same path through PYTHONPATH.
ROOT = Path(__file__).resolve().parent.parent
for _folder in (ROOT / "adapters", ROOT / "src"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
