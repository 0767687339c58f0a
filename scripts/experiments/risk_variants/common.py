"""Where the risk experiments keep their files: the feature cache, prep.npz, results.jsonl, margins."""
import os
from pathlib import Path

OUT = Path(os.environ.get("WARDWATCH_EXPERIMENTS", "experiments-out/risk-variants"))
