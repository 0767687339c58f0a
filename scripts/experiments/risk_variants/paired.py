"""Each variant against the base fitted with the same seed and subset: AUROC and utility gains per pair
(see prep.py for the order of the steps)."""
from common import OUT
import json, collections, numpy as np
rs=[json.loads(l) for l in open(OUT / "results.jsonl")]
key=lambda r:(r['seed'], r.get('sub'))
base={key(r):r for r in rs if r['variant']=='base'}
g=collections.defaultdict(list)
for r in rs:
    if r['variant']!='base' and key(r) in base: g[r['variant']].append(r)
for v,l in g.items():
    da=[r['auroc']-base[key(r)]['auroc'] for r in l]; du=[r['utility']-base[key(r)]['utility'] for r in l]
    print(f"{v:14s} n={len(l)} dAUROC " + " ".join(f"{x:+.5f}" for x in da) + f" mean {np.mean(da):+.5f} | dUtil " + " ".join(f"{x:+.3f}" for x in du) + f" mean {np.mean(du):+.4f}")
