"""Signal filters for 1 Hz (or slower) numerics, vectorised across patients.

Each filter keeps its state in numpy arrays shaped (patients, metrics, ...) and processes one
"round" at a time: at most one new reading per (patient, metric), for any number of patients.

``Hampel`` works well on isolated spikes (a probe knocked, a motion burst) in otherwise steady
numerics; it does not catch a slow drift (that is a trend, and real) nor a run of artefacts longer
than half its window, which it will take for the new level. ``RateLimit`` catches physiologically
impossible jumps that Hampel lets through at start-up, when its window is not yet full.
``SensorOff`` reads the MIMIC convention (a value of exactly 0 means the sensor is off) and low
device quality; it cannot tell a disconnected sensor from a true zero (asystole), so a zero heart
rate is also reported as a technical condition, and the waveform check decides.

Example on real data (MIMIC-II numerics, 1/min; 0 = sensor off)::

    >>> import numpy as np, wfdb
    >>> from detectors.filters import Hampel
    >>> rec = wfdb.rdrecord("../shared/data/wfdb/s00001/s00001-2896-10-10-00-31n")
    >>> hr = rec.p_signal[:, rec.sig_name.index("HR")]
    >>> h = Hampel(n_rows=1, n_cols=1, window=7)
    >>> flags = [h.step(np.array([0]), np.array([0]), np.array([v]))[0] for v in hr[:200]]
"""

from __future__ import annotations

import numpy as np

from wardwatch.metrics_catalog import METRICS, Metric

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
    """Hampel identifier over the last ``window`` raw values of each (patient, metric)."""

    def __init__(self, n_rows: int, n_cols: int, window: int = 7, k: float = 3.5,
                 min_scale: float | np.ndarray = MIN_SCALE) -> None:
        self.window, self.k = window, k
        self.min_scale = np.broadcast_to(np.asarray(min_scale, float), (n_cols,)) if np.ndim(min_scale) == 0 \
            else np.asarray(min_scale, float)
        self.buf = np.full((n_rows, n_cols, window), np.nan)
        self.pos = np.zeros((n_rows, n_cols), np.int16)

    def resize(self, n_rows: int) -> None:
        extra = n_rows - self.buf.shape[0]
        if extra > 0:
            self.buf = np.concatenate([self.buf, np.full((extra,) + self.buf.shape[1:], np.nan)])
            self.pos = np.concatenate([self.pos, np.zeros((extra, self.pos.shape[1]), np.int16)])

    def step(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> np.ndarray:
        """True where a value is an outlier against its window; then the value joins the window."""
        win = self.buf[rows, cols]
        filled = np.sum(~np.isnan(win), axis=1)
        win = np.where(filled[:, None] > 0, win, 0.0)  # an empty window: no verdict (filled < 5 below)
        med = np.nanmedian(win, axis=1)
        mad = np.nanmedian(np.abs(win - med[:, None]), axis=1) * 1.4826
        scale = np.maximum(np.nan_to_num(mad), self.min_scale[cols])
        outlier = (filled >= 5) & (np.abs(values - med) > self.k * scale)
        p = self.pos[rows, cols]
        self.buf[rows, cols, p] = values
        self.pos[rows, cols] = (p + 1) % self.window
        return outlier

    def median(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanmedian(self.buf[rows, cols], axis=1)


def rate_artefact(cols: np.ndarray, values: np.ndarray, last_clean: np.ndarray, dt_ms: np.ndarray) -> np.ndarray:
    """True where the change since the last clean value is faster than physiology allows."""
    dt = np.maximum(dt_ms / 1000.0, 1.0)
    with np.errstate(invalid="ignore"):
        return np.isfinite(last_clean) & (np.abs(values - last_clean) > RATE[cols] * dt + 0.1 * np.abs(last_clean))


def sensor_off(cols: np.ndarray, values: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Sensor off: a zero where zero means disconnected, or device signal quality below 0.2."""
    return (ZERO_IS_OFF[cols] & (values == 0)) | (np.nan_to_num(quality, nan=1.0) < 0.2)


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
