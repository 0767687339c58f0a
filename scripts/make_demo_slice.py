"""Build the small slice of open data the demo ships (run once; the output is committed).

Picks CinC 2019 patients with densely charted vitals (some septic, some not) and copies the two
MIMIC-II numerics records. Attribution: wardwatch/data/ATTRIBUTION.md.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd  # only this script needs pandas

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "wardwatch" / "data"


def main() -> None:
    df = pd.read_csv(SHARED / "cinc2019" / "cinc2019_setB_dev.csv.gz")
    vit = ["HR", "O2Sat", "Resp", "SBP", "Temp"]
    dense = df.groupby("patient").agg(rows=("ICULOS", "size"), septic=("SepsisLabel", "max"),
                                      filled=("HR", lambda s: s.notna().mean()),
                                      resp=("Resp", lambda s: s.notna().mean()))
    dense = dense[(dense.rows >= 36) & (dense.rows <= 80) & (dense.filled > 0.9) & (dense.resp > 0.8)]
    rng = np.random.default_rng(2019)
    septic = rng.choice(dense[dense.septic == 1].index.to_numpy(), 8, replace=False)
    calm = rng.choice(dense[dense.septic == 0].index.to_numpy(), 8, replace=False)
    keep = sorted(list(septic) + list(calm))
    sl = df[df.patient.isin(keep)].drop(columns=["SepsisLabel"])
    with gzip.open(OUT / "cinc2019_demo.csv.gz", "wt") as f:
        sl.to_csv(f, index=False)
    for rec in ("s00001", "s25047"):
        for p in (SHARED / "wfdb" / rec).iterdir():
            shutil.copy(p, OUT / p.name)
    print(f"{len(keep)} CinC patients, {len(sl)} rows; vitals {vit}")


if __name__ == "__main__":
    main()
