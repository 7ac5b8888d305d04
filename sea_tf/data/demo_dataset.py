"""The embedded demo dataset: synthetic clips in the exact UrbanSound8K layout, plus ``upstream/``.

Layout written under ``out``::

    audio/fold1 .. fold10/<fsID>-<classID>-<occurrence>-<slice>.wav
    metadata/UrbanSound8K.csv      slice_file_name,fsID,start,end,salience,fold,classID,class
    upstream/scene-NNNN.wav        5-10 s unlabelled city scenes (what the student is distilled on)
    upstream/manifest.csv          file,duration,sample_rate,channels
    ust/                           the SONYC-UST v2 layout (annotations.csv, dcase-ust-taxonomy.yaml,
                                   audio/): 10-s multi-label sensor clips, :mod:`sea_tf.data.ust_demo`
    card.json                      generator version, seed, config, counts, hashes
    data.config.yaml               the resolved config

Like the real dataset, every slice of one source recording (one ``fsID``) shares its format
(sample rate, channels, sample type) and its fold, so a classifier cannot score by recognising the
recording. Everything is drawn from ``numpy`` generators seeded by ``(seed, stream, ...)``: the
same seed and config give byte-identical files, and the labelled clips and the upstream scenes use
different streams, so no upstream scene reuses a labelled clip's draws.
"""
import csv
import io
from collections import Counter
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile
from tqdm import tqdm

from sea_tf import cards
from sea_tf.config import write_resolved
from sea_tf.data.recipes import (FULL_LENGTH_WEIGHT, US8K_CLASSES, draw_background, draw_source,
                                 render, render_background)
from sea_tf.data.synth import normalise_rms
from sea_tf.data.ust_demo import plan_ust, write_ust
from sea_tf.errors import ConfigError, DataError, OutputError
from sea_tf.presets import load_defaults

KIND = "sea-tf-demo-dataset"
GENERATOR_VERSION = 1
N_FOLDS = 10
METADATA_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
MANIFEST_COLUMNS = ["file", "duration", "sample_rate", "channels"]

# Seed streams: numpy SeedSequence entropy is (seed, stream, ...), one stream per kind of draw.
_SOURCE, _SLICE, _PLAN, _UPSTREAM, _LOCATION = range(5)

#: Settings of the generator: the packaged ``configs/data/defaults.yaml`` (section ``make-demo``).
DEFAULTS = load_defaults("data/make-demo")

#: One planned file (a clip or a scene): its metadata columns and how to synthesise it.
Row = dict[str, Any]


def generation_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that determines the files (no ``out``/``overwrite``)."""
    return {key: value for key, value in cfg.items() if key not in ("out", "overwrite")}


def plan_clips(cfg: Mapping[str, Any]) -> list[Row]:
    """Decide every labelled clip without synthesising audio.

    Parameters
    ----------
    cfg : dict
        Resolved config (schema :data:`DEFAULTS`).

    Returns
    -------
    list of dict
        One row per clip: the metadata columns plus ``sample_rate`` (Hz), ``channels``,
        ``subtype`` (``"PCM_16"`` or ``"FLOAT"``), ``n_samples``, ``snr_db``, ``level_dbfs``,
        ``distractor`` (a class name or None) and ``seed_key`` (source and slice indices).
    """
    _validate(cfg)
    rng = np.random.default_rng([cfg["seed"], _PLAN])
    per_class = int(cfg["clips_per_class"])
    n_sources = max(1, min(per_class, int(round(per_class * cfg["source_fraction"]))))
    durations, snr, level = cfg["duration_s"], cfg["snr_db"], cfg["level_dbfs"]
    weights = np.asarray(cfg["sample_rate_weights"], dtype=float)
    used_ids: set[int] = set()
    rows: list[Row] = []
    fold_pointer = 0
    for class_id, name in enumerate(US8K_CLASSES):
        slices = np.ones(n_sources, dtype=int)
        for _ in range(per_class - n_sources):
            slices[rng.integers(n_sources)] += 1
        for source in range(n_sources):
            # Round-robin over folds: every fold gets the same number of sources, each of a
            # different class while n_sources <= 10.
            fold = fold_pointer % N_FOLDS + 1
            fold_pointer += 1
            fs_id = int(rng.integers(1000, 200000))
            while fs_id in used_ids:
                fs_id = int(rng.integers(1000, 200000))
            used_ids.add(fs_id)
            sr = int(rng.choice(cfg["sample_rates"], p=weights / weights.sum()))
            channels = 2 if rng.random() < cfg["stereo_fraction"] else 1
            subtype = "FLOAT" if rng.random() < cfg["float_fraction"] else "PCM_16"
            start, occurrence, slice_index = float(rng.uniform(0, 20)), 0, 0
            for k in range(int(slices[source])):
                full = rng.random() < durations["full_length_fraction"] * FULL_LENGTH_WEIGHT.get(name, 1.0)
                dur = durations["max"] if full else float(rng.uniform(durations["min"], durations["max"]))
                n = max(1, int(round(dur * sr)))
                snr_db = float(rng.uniform(snr["min"], snr["max"]))
                distractor: str | None = None
                if rng.random() < cfg["distractor_fraction"]:
                    distractor = US8K_CLASSES[(class_id + int(rng.integers(1, 10))) % 10]
                rows.append({
                    "slice_file_name": f"{fs_id}-{class_id}-{occurrence}-{slice_index}.wav",
                    "fsID": fs_id, "start": round(start, 6), "end": round(start + n / sr, 6),
                    # UrbanSound8K: 1 = foreground, 2 = background (the source is not dominant).
                    "salience": 1 if snr_db >= 6 else 2,
                    "fold": fold, "classID": class_id, "class": name,
                    "sample_rate": sr, "channels": channels, "subtype": subtype, "n_samples": n,
                    "snr_db": snr_db, "level_dbfs": float(rng.uniform(level["min"], level["max"])),
                    "distractor": distractor, "seed_key": (class_id, source, k),
                })
                start += n / sr + float(rng.uniform(0, 3))
                if rng.random() < 0.4:  # the sound stops and starts again: a new occurrence
                    occurrence, slice_index = occurrence + 1, 0
                else:
                    slice_index += 1
    return rows


def render_clip(row: Row, cfg: Mapping[str, Any]) -> npt.NDArray[np.float32]:
    """Synthesise one planned clip.

    Returns
    -------
    np.ndarray [shape=(n_samples,) or (n_samples, 2)], float32
        In [-1, 1], at ``row["sample_rate"]`` Hz.
    """
    seed = cfg["seed"]
    class_id, source, k = row["seed_key"]
    name, sr, n = row["class"], row["sample_rate"], row["n_samples"]
    params = draw_source(name, np.random.default_rng([seed, _SOURCE, class_id, source]))
    location = draw_background(np.random.default_rng([seed, _LOCATION, class_id, source]))
    rng = np.random.default_rng([seed, _SLICE, class_id, source, k])
    fg = render(name, rng, sr, n, params)
    channels = []
    for ch in range(row["channels"]):
        bg = render_background(rng, sr, n, location)
        if row["distractor"] is not None and ch == 0:
            other = row["distractor"]
            bg = normalise_rms(bg + rng.uniform(0.3, 1.0) * render(other, rng, sr, n, draw_source(other, rng)))
        # A second microphone hears the source a few samples later and at another gain.
        delay = min(int(rng.integers(0, 24)), n - 1) if ch else 0
        dry = np.concatenate([np.zeros(delay), fg[: n - delay]]) * (rng.uniform(0.6, 1.0) if ch else 1.0)
        channels.append(dry + bg * 10 ** (-row["snr_db"] / 20))
    mix = np.stack(channels, axis=1) if len(channels) > 1 else channels[0]
    return _set_level(mix, row["level_dbfs"])


def plan_upstream(cfg: Mapping[str, Any]) -> list[Row]:
    """Decide every upstream scene without synthesising audio.

    Returns
    -------
    list of dict
        One row per scene: ``file`` (``scene-NNNN.wav``), ``index``, ``sample_rate`` (Hz),
        ``channels``, ``subtype`` and ``n_samples`` (5-10 s by default).
    """
    up = cfg["upstream"]
    weights = np.asarray(cfg["sample_rate_weights"], dtype=float)
    rows: list[Row] = []
    for i in range(int(up["recordings"])):
        rng = np.random.default_rng([cfg["seed"], _UPSTREAM, i, 0])
        sr = int(rng.choice(cfg["sample_rates"], p=weights / weights.sum()))
        dur = float(rng.uniform(up["min_duration_s"], up["max_duration_s"]))
        rows.append({"file": f"scene-{i:04d}.wav", "index": i, "sample_rate": sr,
                     "channels": 2 if rng.random() < cfg["stereo_fraction"] else 1,
                     "subtype": "FLOAT" if rng.random() < cfg["float_fraction"] else "PCM_16",
                     "n_samples": int(round(dur * sr))})
    return rows


def render_scene(row: Row, cfg: Mapping[str, Any]) -> npt.NDArray[np.float32]:
    """Synthesise one upstream scene: a city background with a few events of random classes.

    Returns
    -------
    np.ndarray [shape=(n_samples,) or (n_samples, 2)], float32
    """
    rng = np.random.default_rng([cfg["seed"], _UPSTREAM, row["index"], 1])
    sr, n = row["sample_rate"], row["n_samples"]
    location = draw_background(rng)
    n_events = max(1, int(rng.poisson(cfg["upstream"]["events_per_10s"] * n / sr / 10)))
    events = np.zeros(n)
    for _ in range(n_events):
        name = US8K_CLASSES[int(rng.integers(10))]
        m = min(n, int(rng.uniform(0.3, 4.0) * sr))
        onset = int(rng.integers(0, n - m + 1))
        event = render(name, rng, sr, m, draw_source(name, rng))
        fade = np.minimum(1, np.minimum(np.arange(m), m - 1 - np.arange(m)) / (0.01 * sr))
        events[onset:onset + m] += event * fade * 10 ** (rng.uniform(-5, 20) / 20)
    channels = [events + render_background(rng, sr, n, location) for _ in range(row["channels"])]
    mix = np.stack(channels, axis=1) if len(channels) > 1 else channels[0]
    return _set_level(mix, float(rng.uniform(cfg["level_dbfs"]["min"], cfg["level_dbfs"]["max"])))


def make_demo_dataset(cfg: Mapping[str, Any] | None = None, *, out: Path | str | None = None,
                      overwrite: bool | None = None, progress: bool = False) -> dict[str, Any]:
    """Generate the demo dataset (atomically: built beside ``out``, renamed into place at the end).

    Parameters
    ----------
    cfg : dict, optional
        Resolved config (schema :data:`DEFAULTS`); defaults when None.
    out : str or Path, optional
        Output directory; overrides ``cfg["out"]``.
    overwrite : bool, optional
        Replace an existing non-empty ``out`` (only one holding a sea-tf demo dataset); overrides
        ``cfg["overwrite"]``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The dataset card (also written to ``out/card.json``).

    Raises
    ------
    OutputError
        ``out`` is a file, is non-empty without ``overwrite``, or cannot be written.
    ConfigError
        The config is out of range.
    """
    cfg = dict(DEFAULTS if cfg is None else cfg)
    if out is not None:
        cfg["out"] = str(out)
    if overwrite is not None:
        cfg["overwrite"] = bool(overwrite)
    out_dir = Path(cfg["out"])
    clips, scenes, ust_clips = plan_clips(cfg), plan_upstream(cfg), plan_ust(cfg)
    _check_out(out_dir, cfg["overwrite"])
    staging = _make_staging(out_dir)
    try:
        with tqdm(total=len(clips) + len(scenes) + len(ust_clips), desc="make-demo", unit="file",
                  disable=not progress) as bar:
            for fold in range(1, N_FOLDS + 1):
                (staging / "audio" / f"fold{fold}").mkdir(parents=True)
            for row in clips:
                _write_wav(staging / "audio" / f"fold{row['fold']}" / row["slice_file_name"], row, render_clip(row, cfg))
                bar.update()
            (staging / "upstream").mkdir()
            for row in scenes:
                _write_wav(staging / "upstream" / row["file"], row, render_scene(row, cfg))
                bar.update()
            ust = write_ust(staging / "ust", cfg, bar=bar) if ust_clips else None
        (staging / "metadata").mkdir()
        _write_csv(staging / "metadata" / "UrbanSound8K.csv", METADATA_COLUMNS, sorted(clips, key=lambda r: r["slice_file_name"]))
        _write_csv(staging / "upstream" / "manifest.csv", MANIFEST_COLUMNS,
                   [{**r, "duration": round(r["n_samples"] / r["sample_rate"], 6)} for r in scenes])
        card = _card(cfg, clips, scenes, staging)
        card["ust"] = ust and {**ust, "annotations_sha256": cards.sha256_file(staging / "ust" / "annotations.csv")}
        cards.write_card(staging, card)
        write_resolved(cfg, staging, "data")
        _move_into_place(staging, out_dir)
    except OSError as exc:
        raise OutputError(f"cannot write the demo dataset to {out_dir}: {exc.strerror or exc}; "
                          "choose a writable --out with enough free space") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return card


def is_complete(out: Path | str, cfg: Mapping[str, Any]) -> bool:
    """True when ``out`` holds a finished demo dataset generated with the same seed and config."""
    out = Path(out)
    card = cards.read_card(out, required=False) if out.is_dir() else None
    try:
        return (card is not None and card.get("kind") == KIND
                and card.get("generator_version") == GENERATOR_VERSION
                and card.get("config") == generation_config(cfg)
                and (out / "metadata" / "UrbanSound8K.csv").is_file()
                and (out / "upstream" / "manifest.csv").is_file()
                and (not cfg["ust"]["clips_per_sensor"] or (out / "ust" / "annotations.csv").is_file()))
    except AttributeError:  # a card that is not a JSON object
        return False


def read_upstream_manifest(upstream_dir: Path | str) -> list[dict[str, Any]]:
    """Read ``upstream/manifest.csv``.

    Returns
    -------
    list of dict
        ``path`` (Path), ``duration`` (s), ``sample_rate`` (Hz) and ``channels`` per scene.
    """
    upstream_dir = Path(upstream_dir)
    path = upstream_dir / "manifest.csv"
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [{"path": upstream_dir / r["file"], "duration": float(r["duration"]),
                     "sample_rate": int(r["sample_rate"]), "channels": int(r.get("channels") or 1)}
                    for r in reader]
    except FileNotFoundError:
        raise DataError(f"{path}: upstream manifest not found; regenerate with `sea-tf data make-demo`") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: malformed manifest ({exc}); expected columns {', '.join(MANIFEST_COLUMNS)}") from exc
    return rows


# --- helpers ---------------------------------------------------------------------------------------
def _validate(cfg: Mapping[str, Any]) -> None:
    checks = [
        (int(cfg["clips_per_class"]) >= 1, "clips_per_class must be >= 1"),
        (0 < cfg["source_fraction"] <= 1, "source_fraction must be in (0, 1]"),
        (0 < cfg["duration_s"]["min"] <= cfg["duration_s"]["max"], "duration_s needs 0 < min <= max"),
        (cfg["snr_db"]["min"] <= cfg["snr_db"]["max"], "snr_db needs min <= max"),
        (cfg["level_dbfs"]["max"] <= 0, "level_dbfs.max must be <= 0 dBFS"),
        (len(cfg["sample_rates"]) == len(cfg["sample_rate_weights"]) and len(cfg["sample_rates"]) > 0,
         "sample_rates and sample_rate_weights need the same, non-zero length"),
        (all(int(sr) >= 8000 for sr in cfg["sample_rates"]), "sample_rates must be >= 8000 Hz"),
        (int(cfg["upstream"]["recordings"]) >= 0, "upstream.recordings must be >= 0"),
        (0 < cfg["upstream"]["min_duration_s"] <= cfg["upstream"]["max_duration_s"],
         "upstream needs 0 < min_duration_s <= max_duration_s"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"demo dataset config: {message} (see configs/data/defaults.yaml)")


def _set_level(x: np.ndarray, level_dbfs: float) -> npt.NDArray[np.float32]:
    # RMS level as drawn, but never clipping: quieter rather than distorted.
    x = normalise_rms(x, target=10 ** (level_dbfs / 20))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32)


def _write_wav(path: Path, row: Row, audio: np.ndarray) -> None:
    # scipy's writer, not soundfile's: libsndfile stamps float WAVs with the current time (PEAK
    # chunk), which would break byte-identical regeneration.
    data = audio if row["subtype"] == "FLOAT" else np.round(audio * 32767).astype(np.int16)
    wavfile.write(path, row["sample_rate"], data)


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def _card(cfg: Mapping[str, Any], clips: Sequence[Row], scenes: Sequence[Row], root: Path) -> dict[str, Any]:
    def counts(values: Iterable[object]) -> dict[str, int]:
        return {str(k): v for k, v in sorted(Counter(values).items())}

    clip_durations = np.array([r["n_samples"] / r["sample_rate"] for r in clips])
    scene_durations = np.array([r["n_samples"] / r["sample_rate"] for r in scenes] or [0.0])
    return {
        "kind": KIND,
        "generator_version": GENERATOR_VERSION,
        "seed": cfg["seed"],
        "config": generation_config(cfg),
        "layout": "UrbanSound8K",
        "classes": US8K_CLASSES,
        "n_clips": len(clips),
        "n_sources": len({r["fsID"] for r in clips}),
        "clips_per_fold": counts(r["fold"] for r in clips),
        "classes_per_fold": {str(f): len({r["class"] for r in clips if r["fold"] == f}) for f in range(1, N_FOLDS + 1)},
        "clips_per_class": counts(r["class"] for r in clips),
        "sample_rates": counts(r["sample_rate"] for r in clips),
        "channels": counts(r["channels"] for r in clips),
        "subtypes": counts(r["subtype"] for r in clips),
        "clip_duration_s": {"min": round(float(clip_durations.min()), 3), "mean": round(float(clip_durations.mean()), 3),
                            "max": round(float(clip_durations.max()), 3), "total": round(float(clip_durations.sum()), 1)},
        "upstream": {"n_recordings": len(scenes), "total_duration_s": round(float(scene_durations.sum()), 1),
                     "sample_rates": counts(r["sample_rate"] for r in scenes)},
        "metadata_sha256": cards.sha256_file(root / "metadata" / "UrbanSound8K.csv"),
        "upstream_manifest_sha256": cards.sha256_file(root / "upstream" / "manifest.csv"),
    }


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(f"{out} exists and is not empty; pass --overwrite to replace it or choose another --out")
        card = cards.read_card(out, required=False) if (out / "card.json").exists() else None
        if not (isinstance(card, dict) and card.get("kind") == KIND):
            raise OutputError(f"{out} does not hold a sea-tf demo dataset (no demo card.json); refusing to "
                              "delete it even with --overwrite: remove it yourself or choose another --out")


def _make_staging(out: Path) -> Path:
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.absolute().name}.partial-", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {parent} is not a writable directory ({exc.strerror or exc}); "
                          "choose a writable --out") from exc


def _move_into_place(staging: Path, out: Path) -> None:
    # Directory renames within one file system are atomic: readers see no dataset or all of it.
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if out.exists():
        old = out.absolute().parent / f".{out.absolute().name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)
