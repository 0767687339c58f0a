"""The vital signs WardWatch knows: codes (LOINC, IEEE 11073 MDC), canonical UCUM unit, plausible range.

One table, so that ingest validation, FHIR/HL7 mapping, detectors and the history export agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Metric(StrEnum):
    heart_rate = "heart_rate"
    pulse_rate = "pulse_rate"
    spo2 = "spo2"
    resp_rate = "resp_rate"
    temperature = "temperature"
    sbp = "sbp"
    dbp = "dbp"
    map = "map"
    etco2 = "etco2"


@dataclass(frozen=True)
class MetricInfo:
    metric: Metric
    label: str
    loinc: str
    unit: str  # canonical UCUM unit
    low: float  # physiologically possible range: outside it a value is rejected, not alarmed on
    high: float
    mdc: int | None = None
    mdc_name: str | None = None


CATALOG: dict[Metric, MetricInfo] = {
    m.metric: m
    for m in [
        MetricInfo(Metric.heart_rate, "Heart rate", "8867-4", "/min", 0, 350, 147842, "MDC_ECG_HEART_RATE"),
        MetricInfo(Metric.pulse_rate, "Pulse rate", "8889-8", "/min", 0, 350, 149530, "MDC_PULS_OXIM_PULS_RATE"),
        MetricInfo(Metric.spo2, "SpO2", "59408-5", "%", 0, 100, 150456, "MDC_PULS_OXIM_SAT_O2"),
        MetricInfo(Metric.resp_rate, "Respiratory rate", "9279-1", "/min", 0, 120, 151562, "MDC_RESP_RATE"),
        MetricInfo(Metric.temperature, "Body temperature", "8310-5", "Cel", 20, 45, 150364, "MDC_TEMP_BODY"),
        MetricInfo(Metric.sbp, "Systolic BP", "8480-6", "mm[Hg]", 0, 300, 150033, "MDC_PRESS_BLD_ART_SYS"),
        MetricInfo(Metric.dbp, "Diastolic BP", "8462-4", "mm[Hg]", 0, 250, 150034, "MDC_PRESS_BLD_ART_DIA"),
        MetricInfo(Metric.map, "Mean arterial pressure", "8478-0", "mm[Hg]", 0, 250, 150035, "MDC_PRESS_BLD_ART_MEAN"),
        MetricInfo(Metric.etco2, "End-tidal CO2", "19889-5", "mm[Hg]", 0, 150, 151708, "MDC_AWAY_CO2_ET"),
    ]
}

# The range a clinician may set an alarm limit in: narrower than what a device can report, so
# that no limit (SpO2 low at 0, say) silently switches an alarm off; that takes disable_alarm.
ALARM_LIMIT_RANGE: dict[Metric, tuple[float, float]] = {
    Metric.heart_rate: (20, 250), Metric.pulse_rate: (20, 250), Metric.spo2: (50, 100),
    Metric.resp_rate: (3, 60), Metric.temperature: (30, 43), Metric.sbp: (50, 260),
    Metric.dbp: (20, 200), Metric.map: (30, 200), Metric.etco2: (5, 100),
}

# How often a metric is expected to be read: a value older than this is shown greyed with its age.
# Monitors stream the continuous ones (1/s to 1/min); a cuff measures every 15-60 min; a ward
# thermometer every few hours.
EXPECTED_INTERVAL_S: dict[Metric, int] = {
    Metric.heart_rate: 120, Metric.pulse_rate: 120, Metric.spo2: 120, Metric.resp_rate: 120, Metric.etco2: 120,
    Metric.sbp: 3600, Metric.dbp: 3600, Metric.map: 3600, Metric.temperature: 4 * 3600,
}

# Extra codes seen from devices that mean the same metric.
LOINC_TO_METRIC: dict[str, Metric] = {info.loinc: m for m, info in CATALOG.items()}
LOINC_TO_METRIC.update({"2708-6": Metric.spo2, "8310-5": Metric.temperature, "8331-1": Metric.temperature})
MDC_TO_METRIC: dict[int, Metric] = {info.mdc: m for m, info in CATALOG.items() if info.mdc}
MDC_TO_METRIC.update({149522: Metric.pulse_rate,  # MDC_BLD_PULS_RATE_INV: an arterial line's pulse, not the ECG's
                      150037: Metric.sbp, 150038: Metric.dbp, 150039: Metric.map,
                      150021: Metric.sbp, 150022: Metric.dbp, 150023: Metric.map, 150344: Metric.temperature,
                      149546: Metric.pulse_rate,  # MDC_PULS_RATE_NON_INV: a cuff's pulse rate (PHD IG)
                      # the respiration rate as monitors measure it: airway flow, ECG-lead impedance, capnography
                      151570: Metric.resp_rate, 151578: Metric.resp_rate, 151594: Metric.resp_rate,
                      # body temperature at a site, as spot-check thermometers write it: core, tympanic,
                      # rectal, oral, ear, axillary
                      150368: Metric.temperature, 150392: Metric.temperature, 188420: Metric.temperature,
                      188424: Metric.temperature, 188428: Metric.temperature, 188452: Metric.temperature})

# A monitor may measure one vital sign from several sources at once and report each (IntelliVue's
# impedance RR and capnography's awRR; an ECG's heart rate beside an arterial line's pulse). The
# patient's value at that moment is the most reliable source's (lowest rank here; others rank 1):
# rates measured at the airway before the generic code and ECG-lead impedance (which cardiac and
# motion artefact distort); a pulse from an arterial line, then the oximeter, then a cuff.
SOURCE_RANK: dict[int, int] = {151570: 0, 151594: 0, 151562: 1, 151578: 2,
                               149522: 0, 149530: 1, 149546: 2}

# IEEE 11073-10101 reference ids (as PCD-01 writes them in OBX-3.2, or alone) -> code.
MDC_NAME_TO_CODE: dict[str, int] = {info.mdc_name: info.mdc for info in CATALOG.values() if info.mdc and info.mdc_name}
MDC_NAME_TO_CODE.update({"MDC_ECG_CARD_BEAT_RATE": 147842, "MDC_PRESS_BLD_NONINV_SYS": 150021,
                         "MDC_PRESS_BLD_NONINV_DIA": 150022, "MDC_PRESS_BLD_NONINV_MEAN": 150023, "MDC_TEMP": 150344,
                         "MDC_AWAY_RESP_RATE": 151570, "MDC_TTHOR_RESP_RATE": 151578, "MDC_CO2_RESP_RATE": 151594,
                         "MDC_TEMP_CORE": 150368, "MDC_TEMP_TYMP": 150392, "MDC_TEMP_RECT": 188420, "MDC_TEMP_ORAL": 188424,
                         "MDC_TEMP_EAR": 188428, "MDC_TEMP_AXILLA": 188452,
                         "MDC_BLD_PULS_RATE_INV": 149522, "MDC_PULS_RATE_NON_INV": 149546})

# IEEE 11073 units (partition 4, MDC_DIM_*) as PCD-01 writes them in OBX-6 -> UCUM.
MDC_UNIT_TO_UCUM: dict[int, str] = {262688: "%", 264864: "/min", 264928: "/min", 268192: "Cel", 266560: "[degF]",
                                    266016: "mm[Hg]", 265987: "kPa", 262656: "1"}
MDC_UNIT_NAME_TO_CODE: dict[str, int] = {"MDC_DIM_PERCENT": 262688, "MDC_DIM_BEAT_PER_MIN": 264864,
                                         "MDC_DIM_RESP_PER_MIN": 264928, "MDC_DIM_DEGC": 268192, "MDC_DIM_FAHR": 266560,
                                         "MDC_DIM_MMHG": 266016, "MDC_DIM_KILO_PASCAL": 265987,
                                         "MDC_DIM_DIMLESS": 262656}


def mdc_code(text: str) -> int | None:
    """An MDC code as monitors write it: a number (``147842``), a reference id (``MDC_ECG_HEART_RATE``,
    units too), partition-and-hex (``0002-4182`` = partition 2, term 0x4182) or partition::term
    (``2::16770``); None when it is none of these."""
    t = text.strip()
    if t.isascii() and t.isdigit():  # isdigit alone is true for "²", which int() refuses
        return int(t)
    up = t.upper()
    if up.startswith("MDC_"):
        return MDC_NAME_TO_CODE.get(up, MDC_UNIT_NAME_TO_CODE.get(up))
    part, sep, term = t.partition("-")
    if sep and len(part) == 4 and len(term) == 4 and part.isascii() and part.isdigit():
        try:
            return int(part) * 65536 + int(term, 16)
        except ValueError:
            return None
    part, sep, term = t.partition("::")
    if sep and (part + term).isascii() and part.isdigit() and term.isdigit() and int(term) < 65536:
        return int(part) * 65536 + int(term)
    return None


# Metric order used for numpy columns in the hot path.
METRIC_INDEX: dict[Metric, int] = {m: i for i, m in enumerate(Metric)}
METRICS: tuple[Metric, ...] = tuple(Metric)

# Unit aliases normalised to UCUM, and conversions (unit -> (canonical unit, function)).
UNIT_ALIASES: dict[str, str] = {
    "bpm": "/min", "beats/min": "/min", "{beats}/min": "/min", "{beat}/min": "/min", "{breath}/min": "/min", "1/min": "/min", "/min": "/min",
    "breaths/min": "/min", "{breaths}/min": "/min", "rpm": "/min", "min-1": "/min",
    "%": "%", "percent": "%", "pct": "%", "1": "1",
    "cel": "Cel", "c": "Cel", "°c": "Cel", "degc": "Cel", "deg c": "Cel",
    "[degf]": "[degF]", "f": "[degF]", "°f": "[degF]", "degf": "[degF]",
    "mm[hg]": "mm[Hg]", "mmhg": "mm[Hg]", "mm hg": "mm[Hg]", "kpa": "kPa",
    "s-1": "/s", "hz": "/s", "/s": "/s",
    # IEEE 11073 MDC unit codes as IHE PCD-01 devices send them in OBX-6.
    "264864^mdc_dim_beat_per_min": "/min", "mdc_dim_beat_per_min": "/min",
    "264928^mdc_dim_resp_per_min": "/min", "mdc_dim_resp_per_min": "/min",
    "262688^mdc_dim_percent": "%", "mdc_dim_percent": "%",
    "268192^mdc_dim_degc": "Cel", "mdc_dim_degc": "Cel",
    "266016^mdc_dim_mmhg": "mm[Hg]", "mdc_dim_mmhg": "mm[Hg]",
}


def normalise_unit(unit: str) -> str:
    u = unit.strip()
    return UNIT_ALIASES.get(u.lower(), UNIT_ALIASES.get(u.lower().split("&")[0], u))


def _identity(v: float) -> float:
    return v


CONVERSIONS: dict[tuple[str, str], object] = {
    ("[degF]", "Cel"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("kPa", "mm[Hg]"): lambda v: v * 7.50062,
    ("1", "%"): lambda v: v * 100.0,  # SpO2 as a fraction
    ("/s", "/min"): lambda v: v * 60.0,
}


def to_canonical(metric: Metric, value: float, unit: str) -> float:
    """Convert ``value`` in ``unit`` to the metric's canonical UCUM unit; ValueError when impossible."""
    canonical = CATALOG[metric].unit
    u = normalise_unit(unit)
    if u == canonical:
        return value
    conv = CONVERSIONS.get((u, canonical))
    if conv is None:
        raise ValueError(f"unit {unit!r} cannot be converted to {canonical!r} for {metric.value}")
    return conv(value)  # type: ignore[operator]
