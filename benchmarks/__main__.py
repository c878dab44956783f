"""``python -m benchmarks``: the benchmark suite (benchmarks/run.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import main

sys.exit(main())
