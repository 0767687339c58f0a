"""Signal filters for 1 Hz (or slower) numerics, vectorised across patients: the first detector of
every round, deciding which readings are clean enough to drive alarms and scores.

Each filter keeps its state in numpy arrays shaped (patients, metrics, ...) and processes one
"round" at a time: at most one new reading per (patient, metric), for any number of patients.
"""

from __future__ import annotations

import numpy as np

from wardwatch.metrics_catalog import METRICS, Metric

from .protocol import Round, RowState, grow

M = len(METRICS)

# Largest plausible change per second, per metric (beyond it, a reading is an artefact).
MAX_RATE_PER_S = {
    Metric.heart_rate: 8.0, Metric.pulse_rate: 8.0, Metric.spo2: 3.0, Metric.resp_rate: 4.0,
    Metric.temperature: 0.05, Metric.sbp: 10.0, Metric.dbp: 8.0, Metric.map: 8.0, Metric.etco2: 4.0,
}
RATE = np.array([MAX_RATE_PER_S[m] for m in METRICS])
# Metrics for which a value of exactly 0 means "sensor off" rather than a measurement.
ZERO_IS_OFF = np.array([m in (Metric.heart_rate, Metric.pulse_rate, Metric.spo2, Metric.resp_rate, Metric.sbp,
                              Metric.dbp, Metric.map) for m in METRICS])


# The smallest spread Hampel assumes, per metric: real numerics often sit still for minutes, and a
# zero MAD must not turn normal one-step changes into "outliers" (measured on MIMIC-II s00001).
MIN_SCALE = np.array([{Metric.heart_rate: 3.0, Metric.pulse_rate: 3.0, Metric.spo2: 1.0, Metric.resp_rate: 2.0,
                       Metric.temperature: 0.2, Metric.sbp: 4.0, Metric.dbp: 4.0, Metric.map: 4.0,
                       Metric.etco2: 2.0}[m] for m in METRICS])


class Hampel:
    """Hampel identifier (Hampel, J Am Stat Assoc 1974; the filter form: Pearson et al., EURASIP
    J Adv Signal Process 2016) over the last ``window`` raw values of each (patient, metric): a value
    more than ``k`` scaled MADs from the window's median is an outlier.

    Works when: isolated spikes (a probe knocked, a motion burst) in otherwise steady numerics.
    Does not work when: a slow drift (that is a trend, and real: left alone); a run of artefacts
    longer than half the window, which it takes for the new level; fewer than 5 values in the window
    (no verdict). A per-metric minimum spread keeps still numerics (MAD 0) from flagging every
    normal one-step change.

    On real MIMIC-II numerics shipped with WardWatch (s00001, 32 h at 1/min; 0 = sensor off, left
    out as the engine does), the heart rate's spikes::

        >>> import numpy as np, wfdb
        >>> from importlib.resources import files
        >>> rec = wfdb.rdrecord(str(files("wardwatch") / "data" / "s00001-2896-10-10-00-31n"))
        >>> hr = rec.p_signal[:, rec.sig_name.index("HR")]
        >>> on = hr[hr != 0]
        >>> h = Hampel(n_rows=1, n_cols=1, window=7, min_scale=3.0)
        >>> flags = np.array([h.step(np.array([0]), np.array([0]), np.array([v]))[0] for v in on])
        >>> int(flags.sum()), len(on), [round(float(v)) for v in on[flags][:5]]
        (18, 1890, [66, 68, 70, 70, 70])
    """

    def __init__(self, n_rows: int, n_cols: int, window: int = 7, k: float = 3.5,
                 min_scale: float | np.ndarray = MIN_SCALE) -> None:
        self.window, self.k = window, k
        self.min_scale = np.broadcast_to(np.asarray(min_scale, float), (n_cols,)) if np.ndim(min_scale) == 0 \
            else np.asarray(min_scale, float)
        self.buf = np.full((n_rows, n_cols, window), np.nan)
        self.pos = np.zeros((n_rows, n_cols), np.int16)

    def resize(self, n_rows: int) -> None:
        self.buf = grow(self.buf, n_rows, np.nan)
        self.pos = grow(self.pos, n_rows, 0)

    def step(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> np.ndarray:
        """True where a value is an outlier against its window; then the value joins the window."""
        win = self.buf[rows, cols]
        filled = np.sum(~np.isnan(win), axis=1)
        win = np.where(filled[:, None] > 0, win, 0.0)  # an empty window: no verdict (filled < 5 below)
        med = nanmedian_rows(win)
        mad = nanmedian_rows(np.abs(win - med[:, None])) * 1.4826
        scale = np.maximum(np.nan_to_num(mad), self.min_scale[cols])
        with np.errstate(over="ignore"):  # absurd values (1e308) overflow to inf: no verdict either way, as meant
            outlier = (filled >= 5) & (np.abs(values - med) > self.k * scale)
        p = self.pos[rows, cols]
        self.buf[rows, cols, p] = values
        self.pos[rows, cols] = (p + 1) % self.window
        return outlier


def nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=1)`` of a (rows x window) array, the same floats, without the masked
    arrays numpy's small-window path goes through (the filters' largest cost): sort (NaN last), then
    the mean of the two middle values of each row's count, computed as numpy does ((lo + hi) / 2,
    also when they are the same value)."""
    s = np.sort(a, axis=1)
    n = a.shape[1] - np.isnan(s).sum(axis=1)
    h = n // 2
    lo = np.where(n % 2 == 1, h, h - 1).clip(0)
    i = np.arange(len(a))
    with np.errstate(over="ignore", invalid="ignore"):
        med = (s[i, lo] + s[i, h.clip(max=a.shape[1] - 1)]) / 2.0
    return np.where(n > 0, med, np.nan)


def rate_artefact(cols: np.ndarray, values: np.ndarray, last_clean: np.ndarray, dt_ms: np.ndarray) -> np.ndarray:
    """True where the change since the last clean value is faster than physiology allows."""
    dt = np.maximum(dt_ms / 1000.0, 1.0)
    with np.errstate(invalid="ignore"):
        return np.isfinite(last_clean) & (np.abs(values - last_clean) > RATE[cols] * dt + 0.1 * np.abs(last_clean))


def sensor_off(cols: np.ndarray, values: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Sensor off: a zero where zero means disconnected, or device signal quality below 0.2."""
    return (ZERO_IS_OFF[cols] & (values == 0)) | (np.nan_to_num(quality, nan=1.0) < 0.2)


class SignalFilter(RowState):
    """The signal filters of the engine, in order: sensor off, Hampel, rate of change.

    A reading is *off* when its probe reads 0 where 0 means disconnected (the MIMIC convention) or
    the device's quality is below 0.2; an *artefact* when Hampel calls it a spike (within 2 min of
    the last clean value) or it changed faster than physiology allows (:data:`MAX_RATE_PER_S`);
    otherwise *valid*, and it becomes the patient's latest clean value of that metric.

    Works when: MIMIC-style numerics at 1 Hz to 1/min. Does not work when: a true zero (asystole)
    looks like a sensor off (the sensor-off alarm and the waveform cross-check decide); a real
    sudden change right after a gap is accepted only because a gap over 5 min resets the filters;
    values charted hours apart are never judged against each other. Sources: Hampel 1974 (see
    :class:`Hampel`); the rate limits are WardWatch's own, per metric.

    The heart rate of the shipped MIMIC-II record s00001 (32 h at 1/min), as the engine sees it:
    readings off, artefacts, and the last clean value::

        >>> import numpy as np, wfdb
        >>> from importlib.resources import files
        >>> from detectors.protocol import Round
        >>> rec = wfdb.rdrecord(str(files("wardwatch") / "data" / "s00001-2896-10-10-00-31n"))
        >>> hr = rec.p_signal[:, rec.sig_name.index("HR")]
        >>> f = SignalFilter()
        >>> f.resize(1)
        >>> seen = [f.update(Round(np.array([0]), np.array([0]), np.array([v]), np.array([60_000 * i]),
        ...                        np.array([np.nan]), ["s00001"])) for i, v in enumerate(hr)]
        >>> int(sum(r.off.sum() for r in seen)), int(sum((~r.off & ~r.valid).sum() for r in seen)), float(f.clean[0, 0])
        (46, 15, 68.5)
    """

    ARRAYS = {"last_ts": ((M,), np.int64, -1), "clean": ((M,), np.float64, np.nan),
              "clean_ts": ((M,), np.int64, -1)}

    def __init__(self) -> None:
        super().__init__()
        self.hampel = Hampel(0, M)
        self.artefacts = 0  # readings judged artefacts since start (a metric for the worker)

    def resize(self, n_rows: int) -> None:
        super().resize(n_rows)
        self.hampel.resize(n_rows)

    def row_arrays(self):
        yield from super().row_arrays()
        yield self.hampel, "buf"
        yield self.hampel, "pos"

    def state_dict(self, row: int) -> dict:
        return {**super().state_dict(row), "hampel": self.hampel.buf[row].tolist(),
                "hampel_pos": self.hampel.pos[row].tolist()}

    def load_state(self, row: int, doc: dict) -> None:
        super().load_state(row, doc)
        self.hampel.buf[row] = np.asarray(doc["hampel"], dtype=float)
        self.hampel.pos[row] = np.asarray(doc["hampel_pos"], dtype=np.int16)

    def update(self, rnd: Round) -> Round:
        """Sets ``rnd.off``, ``rnd.valid`` and ``rnd.clean``; the valid values become the latest clean ones."""
        rr, cc, v, t = rnd.rows, rnd.metrics, rnd.values, rnd.ts
        off = sensor_off(cc, v, rnd.quality)
        dt = t - self.clean_ts[rr, cc]
        on = ~off
        outlier = np.zeros(len(rr), bool)
        if on.any():
            outlier[on] = self.hampel.step(rr[on], cc[on], v[on])
        # Hampel judges streams (a reading a second or a minute); values charted hours apart are not
        # "spikes" of each other, and a reading after a long gap is not an artefact of a jump.
        artefact = on & ((outlier & (dt <= 120_000)) | rate_artefact(cc, v, self.clean[rr, cc], dt))
        artefact &= ~((dt > 300_000) | (self.clean_ts[rr, cc] < 0))
        self.artefacts += int(artefact.sum())
        valid = on & ~artefact
        self.clean[rr[valid], cc[valid]] = v[valid]
        self.clean_ts[rr[valid], cc[valid]] = t[valid]
        self.last_ts[rr, cc] = t
        rnd.off, rnd.valid, rnd.clean = off, valid, np.where(valid, v, np.nan)
        return rnd


def median_smooth(x: np.ndarray, size: int = 5) -> np.ndarray:
    """Median smoothing of a numerics series (scipy.signal.medfilt), for charts and resampling."""
    from scipy.signal import medfilt

    return medfilt(np.asarray(x, float), kernel_size=size)


def resample_mean(ts_ms: np.ndarray, values: np.ndarray, every_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample irregular readings to a regular grid by window means (windows aligned to the epoch)."""
    if len(ts_ms) == 0:
        return ts_ms, values
    bins = ts_ms // every_ms
    uniq, inv = np.unique(bins, return_inverse=True)
    sums = np.bincount(inv, weights=values)
    counts = np.bincount(inv)
    return uniq * every_ms, sums / counts
