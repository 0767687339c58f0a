"""Summary tables of results.jsonl (see prep.py for the order of the steps)."""
from common import OUT
import json, collections
rs=[json.loads(l) for l in open(OUT / "results.jsonl")]
print(f"{'variant':16s} {'seed':>5s} {'sub':>4s} {'nfeat':>5s} {'AUROC':>8s} {'util':>6s} {'ep/d':>6s} {'caught':>8s} {'trees':>5s}")
for r in rs:
    print(f"{r['variant']:16s} {r['seed']:>5} {str(r.get('sub')):>4s} {r['n_feat']:>5} {r['auroc']:8.5f} {r['utility']:6.3f} {r['episodes']:6.3f} {r['caught']:>8s} {r['trees']:>5}")
g=collections.defaultdict(list)
for r in rs: g[r['variant']].append(r)
print()
for v,l in g.items():
    if len(l)>1:
        import numpy as np
        a=np.array([x['auroc'] for x in l]); u=np.array([x['utility'] for x in l])
        print(f"{v:16s} n={len(l)} AUROC mean {a.mean():.5f} sd {a.std(ddof=1):.5f} range {a.min():.5f}-{a.max():.5f} | util mean {u.mean():.4f} sd {u.std(ddof=1):.4f} range {u.min():.3f}-{u.max():.3f}")
