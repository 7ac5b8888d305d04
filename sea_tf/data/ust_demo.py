"""The demo's SONYC-UST set (``ust/`` of ``sea-tf data make-demo``), in the exact SONYC-UST v2 layout.

Written under ``out/ust``::

    annotations.csv             crowd rows (3 noisy annotators per clip) and, on validate, the
                                verified annotator-0 row; the SONYC-UST v2 columns
    dcase-ust-taxonomy.yaml     the 8 coarse classes with their fine tags
    audio/<sensor>_<index>.wav  10-s mono 16-bit clips at the sensor's rate (44.1 or 48 kHz)

Each sensor has its own city background and rate; sensors, not clips, are split between train and
validate, so a classifier cannot score by recognising a location. A clip mixes several sources
(each coarse class sounds with probability ``class_probability``, at least one does), rendered
with the US8K sound recipes (:mod:`sea_tf.data.recipes`). Everything is drawn from generators
seeded by ``(seed, stream, ...)`` with streams of their own, so adding ``ust/`` leaves the
UrbanSound8K files byte-identical.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile

from sea_tf.data.recipes import draw_background, draw_source, render, render_background
from sea_tf.data.synth import normalise_rms
from sea_tf.data.ust import REQUIRED_COLUMNS
from sea_tf.errors import ConfigError

if TYPE_CHECKING:
    from tqdm import tqdm

# The SONYC-UST taxonomy (coarse id: name; fine key: name).
COARSE = {1: "engine", 2: "machinery-impact", 3: "non-machinery-impact", 4: "powered-saw", 5: "alert-signal",
          6: "music", 7: "human-voice", 8: "dog"}
FINE = {
    1: {"1": "small-sounding-engine", "2": "medium-sounding-engine", "3": "large-sounding-engine",
        "X": "engine-of-uncertain-size"},
    2: {"1": "rock-drill", "2": "jackhammer", "3": "hoe-ram", "4": "pile-driver",
        "X": "other-unknown-impact-machinery"},
    3: {"1": "non-machinery-impact"},
    4: {"1": "chainsaw", "2": "small-medium-rotating-saw", "3": "large-rotating-saw",
        "X": "other-unknown-powered-saw"},
    5: {"1": "car-horn", "2": "car-alarm", "3": "siren", "4": "reverse-beeper", "X": "other-unknown-alert-signal"},
    6: {"1": "stationary-music", "2": "mobile-music", "3": "ice-cream-truck", "X": "music-from-uncertain-source"},
    7: {"1": "person-or-small-group-talking", "2": "person-or-small-group-shouting", "3": "large-crowd",
        "4": "amplified-speech", "X": "other-unknown-human-voice"},
    8: {"1": "dog-barking-whining"},
}
# Which US8K recipe sounds like each fine tag (the closest physical process).
_RECIPE = {1: "engine_idling", 2: "jackhammer", 3: "gun_shot", 4: "drilling", 6: "street_music",
           7: "children_playing", 8: "dog_bark"}
_ALERT_RECIPE = {"1": "car_horn", "2": "siren", "3": "siren", "4": "car_horn"}

# Seed streams, distinct from demo_dataset's 0-4.
_UST_PLAN, _UST_SENSOR, _UST_CLIP, _UST_ANNOTATE = 10, 11, 12, 13


def fine_columns() -> list[str]:
    """``<coarse>-<fine>_<name>`` for every fine tag, taxonomy order."""
    return [f"{c}-{k}_{n}" for c, tags in FINE.items() for k, n in tags.items()]


def coarse_columns() -> list[str]:
    """``<coarse>_<name>`` for every coarse class."""
    return [f"{c}_{n}" for c, n in COARSE.items()]


def validate(ust: Mapping[str, Any]) -> None:
    """ConfigError when the ``ust`` section of ``make-demo`` is out of range."""
    checks = [
        (int(ust["sensors"]) >= 2 and 1 <= int(ust["validate_sensors"]) < int(ust["sensors"]),
         "ust needs sensors >= 2 and 1 <= validate_sensors < sensors"),
        (int(ust["clips_per_sensor"]) >= 0, "ust.clips_per_sensor must be >= 0"),
        (float(ust["clip_seconds"]) > 0, "ust.clip_seconds must be > 0"),
        (0 < float(ust["class_probability"]) <= 1, "ust.class_probability must be in (0, 1]"),
        (int(ust["annotators"]) >= 1, "ust.annotators must be >= 1"),
        (all(0 <= float(ust[k]) < 1 for k in ("annotator_miss", "annotator_false_alarm", "annotator_no_answer")),
         "ust annotator rates must be in [0, 1)"),
        (len(ust["sample_rates"]) > 0 and all(int(sr) >= 8000 for sr in ust["sample_rates"]),
         "ust.sample_rates must be non-empty and >= 8000 Hz"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"demo dataset config: {message} (see configs/data/defaults.yaml)")


def plan_ust(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Decide every UST clip (sensor, split, rate, sources) without synthesising audio.

    Returns
    -------
    list of dict
        ``audio_filename``, ``sensor_id``, ``split``, ``sample_rate``, ``n_samples``, ``sensor``
        (index), ``index``, ``sources`` ({coarse id: fine key}) and the location columns.
    """
    ust = cfg["ust"]
    validate(ust)
    rng = np.random.default_rng([cfg["seed"], _UST_PLAN])
    n_sensors, n_val = int(ust["sensors"]), int(ust["validate_sensors"])
    val_sensors = set(rng.choice(n_sensors, n_val, replace=False).tolist())
    rows: list[dict[str, Any]] = []
    for s in range(n_sensors):
        sensor_id = s + 1
        sr = int(rng.choice(ust["sample_rates"]))
        where = {"borough": int(rng.integers(1, 6)), "block": int(rng.integers(100, 1600)),
                 "latitude": round(float(rng.uniform(40.70, 40.75)), 5),
                 "longitude": round(float(rng.uniform(-74.01, -73.98)), 5)}
        for k in range(int(ust["clips_per_sensor"])):
            drawn = rng.random(len(COARSE)) < float(ust["class_probability"])
            present: np.ndarray | list[int] = np.flatnonzero(drawn) + 1
            if not len(present):
                present = [int(rng.integers(1, len(COARSE) + 1))]
            sources: dict[int, str] = {}
            for c in present:
                keys = [key for key in FINE[int(c)] if key != "X"]
                sources[int(c)] = keys[int(rng.integers(len(keys)))]
            rows.append({"audio_filename": f"{sensor_id:02d}_{k:06d}.wav", "sensor_id": sensor_id, "sensor": s,
                         "index": k, "split": "validate" if s in val_sensors else "train", "sample_rate": sr,
                         "n_samples": int(round(float(ust["clip_seconds"]) * sr)), "sources": sources,
                         "year": 2019, "week": int(rng.integers(1, 53)), "day": int(rng.integers(0, 7)),
                         "hour": int(rng.integers(0, 24)), **where})
    return rows


def render_ust_clip(row: Mapping[str, Any], cfg: Mapping[str, Any]) -> npt.NDArray[np.float32]:
    """Synthesise one planned UST clip: mono float32 ``[n_samples]`` in [-1, 1]."""
    seed = cfg["seed"]
    sr, n = row["sample_rate"], row["n_samples"]
    location = draw_background(np.random.default_rng([seed, _UST_SENSOR, row["sensor"]]))
    rng = np.random.default_rng([seed, _UST_CLIP, row["sensor"], row["index"]])
    mix = render_background(rng, sr, n, location)
    for coarse, fine in row["sources"].items():
        recipe = _ALERT_RECIPE[fine] if coarse == 5 else _RECIPE[coarse]
        source = draw_source(recipe, rng)
        for _ in range(int(rng.integers(1, 3))):
            m = min(n, int(rng.uniform(1.0, 4.0) * sr))
            onset = int(rng.integers(0, n - m + 1))
            event = render(recipe, rng, sr, m, source)
            fade = np.minimum(1, np.minimum(np.arange(m), m - 1 - np.arange(m)) / (0.01 * sr))
            # 0-20 dB over the background: audible, sometimes only just
            mix[onset:onset + m] += event * fade * 10 ** (rng.uniform(0, 20) / 20)
    level = 10 ** (rng.uniform(-30, -18) / 20)
    mix = normalise_rms(mix, target=level)
    peak = float(np.max(np.abs(mix)))
    return (mix * (0.99 / peak) if peak > 0.99 else mix).astype(np.float32)


def annotation_rows(row: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The annotations of one clip: the crowd's noisy rows and, on validate, the verified row.

    Returns
    -------
    list of dict
        Keys: the required columns, ``<fine>_presence``, ``<coarse>_presence``, ``<fine>_proximity``.
    """
    ust = cfg["ust"]
    rng = np.random.default_rng([cfg["seed"], _UST_ANNOTATE, row["sensor"], row["index"]])
    base = {k: row[k] for k in REQUIRED_COLUMNS if k in row}
    ids = rng.choice(np.arange(1, 200), int(ust["annotators"]), replace=False)
    out: list[dict[str, Any]] = []
    for annotator in [*ids.tolist(), *([0] if row["split"] == "validate" else [])]:
        rec = {**base, "annotator_id": int(annotator)}
        for c, tags in FINE.items():
            true_fine = row["sources"].get(c)
            if annotator == 0:
                answer = 1 if true_fine else 0
            elif rng.random() < float(ust["annotator_no_answer"]):
                answer = -1
            elif true_fine:
                answer = 0 if rng.random() < float(ust["annotator_miss"]) else 1
            else:
                answer = 1 if rng.random() < float(ust["annotator_false_alarm"]) else 0
            # A crowd annotator who hears the class may not know which fine tag: the "-X" tags.
            fine: str | None = None
            if answer == 1:
                fine = true_fine if true_fine and (annotator == 0 or rng.random() < 0.7) else None
                if fine is None:
                    fine = "X" if "X" in tags else next(iter(tags))
            for key, name in tags.items():
                col = f"{c}-{key}_{name}"
                rec[f"{col}_presence"] = answer if answer == -1 else int(key == fine)
                rec[f"{col}_proximity"] = (("near" if rng.random() < 0.6 else "far") if key == fine else "-1")
            rec[f"{c}_{COARSE[c]}_presence"] = answer
        out.append(rec)
    return out


def columns() -> list[str]:
    """The annotations.csv header, in the release's order."""
    fine = fine_columns()
    return (REQUIRED_COLUMNS + [f"{c}_presence" for c in fine] + [f"{c}_presence" for c in coarse_columns()]
            + [f"{c}_proximity" for c in fine])


def taxonomy_yaml() -> str:
    """``dcase-ust-taxonomy.yaml`` text (integer coarse keys, fine keys 1.. and X)."""
    lines = ["coarse:"] + [f"  {c}: {n}" for c, n in COARSE.items()] + ["fine:"]
    for c, tags in FINE.items():
        lines.append(f"  {c}:")
        lines += [f"    {k}: {n}" for k, n in tags.items()]
    return "\n".join(lines) + "\n"


def write_ust(out: Path, cfg: Mapping[str, Any], *, bar: tqdm | None = None) -> dict[str, Any]:
    """Write ``out/`` (the UST set) and return its card section."""
    rows = plan_ust(cfg)
    (out / "audio").mkdir(parents=True)
    for row in rows:
        audio = render_ust_clip(row, cfg)
        wavfile.write(out / "audio" / row["audio_filename"], row["sample_rate"],
                      np.round(audio * 32767).astype(np.int16))
        if bar is not None:
            bar.update()
    (out / "dcase-ust-taxonomy.yaml").write_text(taxonomy_yaml())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerows(annotation_rows(row, cfg))
    (out / "annotations.csv").write_text(buffer.getvalue())
    per_split = {s: sum(r["split"] == s for r in rows) for s in ("train", "validate")}
    positives = {s: {COARSE[c]: sum(r["split"] == s and c in r["sources"] for r in rows) for c in COARSE}
                 for s in ("train", "validate")}
    return {"n_clips": len(rows), "clips_per_split": per_split,
            "sensors_per_split": {s: len({r["sensor_id"] for r in rows if r["split"] == s}) for s in per_split},
            "positives": positives, "duration_s": float(cfg["ust"]["clip_seconds"]),
            "sample_rates": sorted({r["sample_rate"] for r in rows})}
