"""Paired patient bootstrap on TUNE patients of the AUROC difference between two saved margins.
usage: python boot.py margin_A.npy margin_B.npy"""
from common import OUT
import sys
import numpy as np
from sklearn.metrics import roc_auc_score

P = np.load(OUT / "prep.npz", allow_pickle=False)
tu = P["part"] == "tune"
y, pat = P["y"][tu], P["patient"][tu]
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
u, inv = np.unique(pat, return_inverse=True)
rows = [np.flatnonzero(inv == i) for i in range(len(u))]
rng = np.random.default_rng(0)
d = []
for _ in range(200):
    idx = np.concatenate([rows[i] for i in rng.integers(0, len(u), len(u))])
    d.append(roc_auc_score(y[idx], b[idx]) - roc_auc_score(y[idx], a[idx]))
d = np.array(d)
print(f"AUROC B-A {roc_auc_score(y, b) - roc_auc_score(y, a):+.5f}  bootstrap 95% [{np.quantile(d, .025):+.5f}, {np.quantile(d, .975):+.5f}]  P(d>0)={np.mean(d > 0):.2f}")
