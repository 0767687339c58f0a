"""Compare WardWatch's risk and alarms with NEWS2 >= 5 and >= 7 on CinC 2019 patients (``wardwatch evaluate``).

By default on the held-out test patients of the training split (seeded, patient-level): patients
never seen in training, calibration or the alarm policy. Every figure comes with its 95 %
confidence interval (bootstrap over patients, fixed seed, so a re-run prints the same); the
calibration (Brier score, reliability table and plot) and subgroups (age band, sex, length of
stay) follow. Age and sex are read here for the subgroups only: the model never sees them.
"""

from __future__ import annotations

import json
import time

import numpy as np

METRICS = ("auroc", "auprc", "utility", "episodes_per_patient_day", "septic_caught", "median_lead_h")
AGE_BANDS = ((0, 45, "age < 45"), (45, 65, "age 45-64"), (65, 80, "age 65-79"), (80, 200, "age >= 80"))
STAY_BANDS = ((0, 24, "stay < 24 h"), (24, 72, "stay 24-72 h"), (72, 10**6, "stay > 72 h"))


def subgroups(df, labels, res) -> list[dict]:
    """WardWatch and NEWS2 >= 5 per age band, sex and length of stay (point estimates)."""
    from detectors.early_warning.metrics import evaluate

    pat = res.patient
    stay = df.groupby("patient")["ICULOS"].transform("max").to_numpy()
    age, sex = df["Age"].to_numpy(), df["Gender"].to_numpy()
    groups = [(label, (age >= lo) & (age < hi)) for lo, hi, label in AGE_BANDS]
    groups += [("female", sex == 0), ("male", sex == 1)]
    groups += [(label, (stay >= lo) & (stay < hi)) for lo, hi, label in STAY_BANDS]
    news = np.nan_to_num(res.news2, nan=0.0)
    out = []
    for label, m in groups:
        if not m.any() or not labels[m].any():
            continue
        ww = evaluate(pat[m], labels[m], res.risk[m], res.alert[m])
        n2 = evaluate(pat[m], labels[m], news[m], (news[m] >= 5).astype(np.int8))
        out.append({"group": label, "patients": len(set(pat[m].tolist())), "wardwatch": ww, "news2_ge_5": n2})
    return out


def plot_reliability(table: list[dict], brier: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = [b["predicted"] for b in table]
    obs = [b["observed"] for b in table]
    top = max(max(pred), max(obs)) * 1.1
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect calibration")
    ax.plot(pred, obs, "o-", color="C0", label=f"WardWatch risk (Brier {brier:.4f})")
    for b in table:
        ax.annotate(f"{b['rows']}", (b["predicted"], b["observed"]), fontsize=6, textcoords="offset points",
                    xytext=(3, -8))
    ax.set_xlabel("predicted risk (mean in bin)")
    ax.set_ylabel("observed SepsisLabel rate")
    ax.set_title("Reliability, held-out patients (rows per bin)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_file(input: str, split: str = "test", as_json: bool = False, plot: str | None = None,
                  n_boot: int = 200) -> int:
    import pandas as pd

    from detectors.early_warning.metrics import bootstrap, brier, evaluate, reliability
    from detectors.early_warning.replay import read_cinc
    from detectors.offline import score_frame
    from detectors.training import split_patients

    t0 = time.time()
    df = read_cinc(input)
    extra = pd.read_csv(input, usecols=["SepsisLabel", "Age", "Gender"])
    if split != "all":
        keep = df["patient"].astype(str).isin(split_patients(df["patient"].astype(str).to_numpy())[split]).to_numpy()
        df, extra = df[keep].reset_index(drop=True), extra[keep].reset_index(drop=True)
    labels = extra["SepsisLabel"].to_numpy()
    res = score_frame(df)
    news = np.nan_to_num(res.news2, nan=0.0)
    scorers = {"wardwatch": (res.risk, res.alert),
               "news2_ge_5": (news, (news >= 5).astype(np.int8)),
               "news2_ge_7": (news, (news >= 7).astype(np.int8))}
    out = {"patients": len(set(res.patient.tolist())), "rows": len(labels), "split": split,
           "rows_with_risk": int((~np.isnan(res.risk)).sum()), "rows_no_data": int(res.no_data.sum())}
    for name, (score, alert) in scorers.items():
        out[name] = evaluate(res.patient, labels, score, alert)
        out[name + "_ci"] = bootstrap(res.patient, labels, score, alert, n=n_boot)
    ok = ~np.isnan(res.risk)
    out["brier"] = round(brier(labels[ok], res.risk[ok]), 5)
    out["brier_base_rate"] = round(brier(labels[ok], np.full(ok.sum(), labels[ok].mean())), 5)
    out["reliability"] = reliability(labels[ok], res.risk[ok])
    df = df.assign(Age=extra["Age"].to_numpy(), Gender=extra["Gender"].to_numpy())
    out["subgroups"] = subgroups(df, labels, res)
    if plot:
        plot_reliability(out["reliability"], out["brier"], plot)
        out["reliability_plot"] = plot
    out["seconds"] = round(time.time() - t0)
    if as_json:
        print(json.dumps(out))
        return 0
    print(f"{out['patients']} patients ({split} split), {out['rows']} patient-hours, risk on "
          f"{out['rows_with_risk']} rows ({out['rows_no_data']} before the first vital sign: the prior, shown as no data)")
    print("95 % CIs: bootstrap over patients")
    print(f"{'':26}{'WardWatch':>24}{'NEWS2 >= 5':>24}{'NEWS2 >= 7':>24}")
    for k in METRICS:
        cells = []
        for name in scorers:
            lo, hi = out[name + "_ci"][k]
            ci = f" ({lo:g}-{hi:g})" if lo is not None else ""
            cells.append(f"{str(out[name][k]) + ci:>24}")
        print(f"{k:26}" + "".join(cells))
    print(f"Brier score {out['brier']} (the base rate alone: {out['brier_base_rate']})")
    print("reliability: risk bin, rows, mean predicted, observed rate")
    for b in out["reliability"]:
        print(f"  {b['bin'][0]:.3f}-{b['bin'][1]:.3f} {b['rows']:>8} {b['predicted']:>9.4f} {b['observed']:>9.4f}")
    print("subgroups (WardWatch | NEWS2 >= 5): patients, AUROC, utility, episodes/patient-day, caught")
    for g in out["subgroups"]:
        w, n = g["wardwatch"], g["news2_ge_5"]
        print(f"  {g['group']:14}{g['patients']:>6}  {w['auroc']:.3f} {w['utility']:>6.3f} {w['episodes_per_patient_day']:>6.2f} "
              f"{w['septic_caught']:>8} | {n['auroc']:.3f} {n['utility']:>6.3f} {n['episodes_per_patient_day']:>6.2f} "
              f"{n['septic_caught']:>8}")
    if plot:
        print(f"reliability plot: {plot}")
    print(f"({out['seconds']} s)")
    return 0
