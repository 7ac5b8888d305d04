"""Measured ablations of the science choices, one command: writes ``docs/RESULTS.md`` (+ ``results.json``
and PNG plots beside it).

Each table is one function (``TABLES``) taking the prepared :class:`Study` and returning rows; every row is
a student distilled for the same number of steps, batch and seeds, scored on held-out SOURCE files by
variance-weighted R² and mean cosine against the centred PCA targets, and by downstream accuracy: a
logistic-regression probe on the student's clip embeddings of the labelled set (UrbanSound8K layout,
folds 1-7 train / 8-10 test, or one folder per class, every 4th file held out).

Teacher: ``--teacher PATH`` (a published .h5 or a saved student), else the published SEA-64
(``edgel3/sea-64``) from the weights cache, both as a cascade (the student learns the 64-d SEA-64
embedding reduced by PCA), else an untrained SEA-64 (random features; the table then says so).

Data: ``--upstream DIR`` (unlabelled audio, any layout) and ``--labelled DIR``; default the demo dataset
(``sea_tf.data`` generated into ``--work``).

    .venv/bin/python benchmarks/bench_science.py --teacher ../shared/models/edgel3_sea_ust_audio_emb_64.h5
    .venv/bin/python benchmarks/bench_science.py --quick --out /tmp/results   # schema check, < 60 s
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sea_tf.audio import resample  # noqa: E402
from sea_tf.errors import SeaTFError  # noqa: E402

SR = 8000
HOP = SR // 2
SCHEMA = 1
Row = dict[str, Any]


@dataclass
class Settings:
    """What every row shares (recorded in results.json)."""
    d: int
    steps: int
    batch_size: int
    learning_rate: float
    filters: list[int]
    seeds: list[int]
    max_windows: int


@dataclass
class Study:
    """Prepared inputs: windows, their sources' split, teacher embeddings and labelled clips."""
    settings: Settings
    teacher_name: str
    teacher_is_trained: bool
    train_audio: npt.NDArray[np.float32]
    held_audio: npt.NDArray[np.float32]
    train_teacher: npt.NDArray[np.float32]
    held_teacher: npt.NDArray[np.float32]
    clips: npt.NDArray[np.float32]
    clip_labels: npt.NDArray[np.int64]
    clip_is_test: npt.NDArray[np.bool_]
    notes: list[str] = field(default_factory=list)


# -- data -------------------------------------------------------------------------------------------

def _read(path: Path) -> npt.NDArray[np.float32]:
    import soundfile as sf
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), int(sr), SR)


def _windows(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    if len(audio) < SR:
        audio = np.pad(audio, (0, SR - len(audio)))
    starts = range(0, len(audio) - SR + 1, HOP)
    return np.stack([audio[s:s + SR] for s in starts]).astype(np.float32)


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))


def upstream_windows(root: Path, *, max_windows: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """1-s windows at 8 kHz (hop 0.5 s) of every audio file under ``root`` and each window's file index."""
    audio, source = [], []
    for i, path in enumerate(_audio_files(root)):
        w = _windows(_read(path))
        audio.append(w)
        source.append(np.full(len(w), i))
    if not audio:
        raise SeaTFError(f"{root}: no audio files")
    x, s = np.concatenate(audio), np.concatenate(source)
    if len(x) > max_windows:
        keep = np.sort(np.random.default_rng(0).choice(len(x), max_windows, replace=False))
        x, s = x[keep], s[keep]
    return x, s


def labelled_clips(root: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """First 1-s window of each labelled clip, its class index and whether it is held out."""
    meta = root / "metadata" / "UrbanSound8K.csv"
    if meta.is_file():
        with meta.open() as fh:
            rows = list(csv.DictReader(fh))
        items = [(root / "audio" / f"fold{r['fold']}" / r["slice_file_name"], int(r["classID"]), int(r["fold"]) >= 8)
                 for r in rows]
    else:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        items = [(f, c, i % 4 == 3) for c, name in enumerate(classes)
                 for i, f in enumerate(_audio_files(root / name))]
    if not items:
        raise SeaTFError(f"{root}: no labelled clips (UrbanSound8K layout or one folder per class)")
    clips = np.stack([_windows(_read(path))[0] for path, _, _ in items])
    return clips, np.array([c for _, c, _ in items]), np.array([t for _, _, t in items])


def demo_data(work: Path, *, quick: bool) -> tuple[Path, Path]:
    """The demo dataset (smaller in quick mode), generated once into ``work``."""
    import copy

    from sea_tf.data.demo_dataset import is_complete, make_demo_dataset
    from sea_tf.presets import load_defaults
    cfg = copy.deepcopy(load_defaults("data")["make-demo"])
    if quick:
        cfg["clips_per_class"] = 2
        cfg["upstream"]["recordings"] = 6
    out = work / ("demo-quick" if quick else "demo")
    cfg.update(out=str(out), overwrite=False)
    if not is_complete(out, cfg):
        make_demo_dataset(cfg, out=out)
    return out / "upstream", out


def load_teacher(spec: str | None) -> tuple[Any, str, bool]:
    """The cascade teacher: ``spec``, else ``edgel3/sea-64`` when cached, else an untrained SEA-64."""
    from sea_tf.errors import WeightsError
    from sea_tf.models import build_student, load_model
    for candidate in ([spec] if spec else ["edgel3/sea-64"]):
        try:
            model = load_model(candidate)
            return model, f"{candidate} (cascade)", True
        except (WeightsError, SeaTFError):
            if spec:
                raise
    return build_student("sea-64", seed=1), "untrained SEA-64 (random features)", False


def prepare(args: argparse.Namespace, settings: Settings) -> Study:
    """Read the data, embed it with the teacher and split by source file."""
    if args.upstream:
        upstream, labelled = Path(args.upstream), Path(args.labelled or args.upstream)
    else:
        upstream, labelled = demo_data(Path(args.work), quick=args.quick)
    audio, source = upstream_windows(upstream, max_windows=settings.max_windows)
    teacher, name, trained = load_teacher(args.teacher)
    emb = teacher.embed_frames(audio).astype(np.float32)
    sources = np.unique(source)
    held_sources = np.random.default_rng(0).choice(sources, max(1, len(sources) // 5), replace=False)
    held = np.isin(source, held_sources)
    clips, labels, is_test = labelled_clips(labelled)
    notes = [f"{len(audio)} upstream windows from {len(sources)} files ({held.sum()} held out, "
             f"{len(held_sources)} files); {len(clips)} labelled clips ({is_test.sum()} test)"]
    return Study(settings, name, trained, audio[~held], audio[held], emb[~held], emb[held], clips, labels, is_test,
                 notes)


# -- one student ------------------------------------------------------------------------------------

def _r2_cap(target: np.ndarray) -> float:
    """Best variance-weighted R² of any non-negative predictor (the oracle max(y, 0))."""
    sst = float(np.sum((target - target.mean(axis=0)) ** 2))
    return 1 - float(np.sum(np.minimum(target, 0) ** 2)) / sst


def distill_one(study: Study, *, head: str, seed: int, shift: bool = False, d: int | None = None) -> Row:
    """Distil one student on PCA-``d`` targets for the fixed step count; held-out and downstream scores.

    ``shift``: train on targets shifted per dimension by the training minimum (all ≥ 0, reachable by the
    published head), the shift undone on the student's outputs before scoring.
    """
    from sea_tf.backend import keras
    from sea_tf.distill import student as student_mod
    from sea_tf.distill.evaluate import regression_metrics
    from sea_tf.models import calibrate_batchnorm
    from sea_tf.reduce import fit_reducer
    s = study.settings
    d = d or s.d
    reducer = fit_reducer(study.train_teacher, method="pca", d=d, seed=seed)
    y, y_held = reducer.transform(study.train_teacher), reducer.transform(study.held_teacher)
    offset = -y.min(axis=0) if shift else np.zeros(d, np.float32)
    keras.utils.set_random_seed(seed)
    student = student_mod.build("sea-64", overrides={"filters": s.filters[:3] + [d]}, head=head, d=d,
                                frame_samples=SR, seed=seed)
    calibrate_batchnorm(student, study.train_audio[:256])
    model, _ = student_mod.training_model(student, mixed_precision=False)
    model.compile(optimizer=keras.optimizers.Adam(s.learning_rate), loss="mse")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(s.steps):
        rows = rng.choice(len(y), s.batch_size, replace=len(y) < s.batch_size)
        model.train_on_batch(study.train_audio[rows], y[rows] + offset)
    train_s = time.perf_counter() - start
    pred = model.predict(study.held_audio, verbose=0, batch_size=64) - offset
    metrics = regression_metrics(pred, y_held)
    emb = model.predict(study.clips, verbose=0, batch_size=64)
    print(f"  {head} head, {'shifted' if shift else 'centred'} targets, d {d}, seed {seed}: R² {metrics['r2']:.3f}, "
          f"cosine {metrics['cosine']:.3f} ({train_s:.0f} s)", flush=True)
    return {"head": head, "targets": "shifted" if shift else "centred", "d": d, "seed": seed,
            "r2": metrics["r2"], "cosine": metrics["cosine"], "accuracy": probe_accuracy(study, emb),
            "r2_cap_non_negative": _r2_cap(y_held), "negative_target_fraction": float(np.mean(y_held < 0)),
            "train_s": round(train_s, 1)}


def probe_accuracy(study: Study, emb: np.ndarray) -> float:
    """Held-out accuracy of a logistic-regression probe on standardised clip embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    train, test = ~study.clip_is_test, study.clip_is_test
    if len(np.unique(study.clip_labels[train])) < 2 or not test.any():
        return float("nan")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(emb[train], study.clip_labels[train])
    return float(probe.score(emb[test], study.clip_labels[test]))


# -- tables -----------------------------------------------------------------------------------------

def head_table(study: Study) -> list[Row]:
    """Head × (R², cosine, accuracy): published, linear, projection, and published on shifted targets."""
    variants = [("published", False), ("linear", False), ("projection", False), ("published", True)]
    return [distill_one(study, head=head, shift=shift, seed=seed)
            for head, shift in variants for seed in study.settings.seeds]


def dimension_table(study: Study) -> list[Row]:
    """d ∈ {16, 32, 64, 128} × head (published, linear), each d below the teacher's width (PCA must reduce)."""
    dims = [d for d in (16, 32, 64, 128) if d < study.train_teacher.shape[1]]
    return [distill_one(study, head=head, d=d, seed=seed)
            for d in dims for head in ("published", "linear") for seed in study.settings.seeds]


TABLES: dict[str, Callable[[Study], list[Row]]] = {"head": head_table, "dimension": dimension_table}
TITLES = {"head": "Student head", "dimension": "Target dimension d"}


def summarise(rows: list[Row], keys: tuple[str, ...]) -> list[Row]:
    """Mean and spread over seeds of each variant."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        entry: Row = dict(zip(keys, key))
        for metric in ("r2", "cosine", "accuracy"):
            values = np.array([m[metric] for m in members], float)
            entry[metric] = float(np.mean(values))
            entry[f"{metric}_sd"] = float(np.std(values))
        entry["r2_cap_non_negative"] = float(np.mean([m["r2_cap_non_negative"] for m in members]))
        entry["seeds"] = len(members)
        out.append(entry)
    return out


TABLE_KEYS = {"head": ("head", "targets"), "dimension": ("d", "head")}


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = ["# Measured ablations (`benchmarks/bench_science.py`)", "",
             f"Teacher: **{results['teacher']}**. Students: SEA-64-shaped body, filters {s['filters'][:3]} + [d], "
             f"{s['steps']} steps at batch {s['batch_size']}, Adam {s['learning_rate']}, seeds {s['seeds']}, "
             f"BN statistics calibrated on 256 training windows. Scores on held-out source files: "
             "variance-weighted R² and mean cosine against the centred PCA targets; accuracy: a logistic-regression "
             "probe on the student's embeddings of the labelled clips (held-out folds). "
             "`r2 cap`: the best R² any non-negative output can reach on these targets.", "",
             *[f"- {n}" for n in results["notes"]], ""]
    for name, table in results["tables"].items():
        keys = TABLE_KEYS[name]
        lines += [f"## {TITLES[name]}", "", f"![{name}]({name}.png)", "",
                  "| " + " | ".join(keys) + " | R² | cosine | accuracy | R² cap (≥ 0 outputs) |",
                  "|" + "---|" * (len(keys) + 4)]
        for row in table["summary"]:
            lines.append("| " + " | ".join(str(row[k]) for k in keys)
                         + f" | {row['r2']:.3f} ± {row['r2_sd']:.3f} | {row['cosine']:.3f} ± {row['cosine_sd']:.3f}"
                         f" | {row['accuracy']:.3f} ± {row['accuracy_sd']:.3f} | {row['r2_cap_non_negative']:.3f} |")
        lines.append("")
    lines.append(f"_Generated {results['generated']} in {results['wall_s']:.0f} s._")
    return "\n".join(lines) + "\n"


def plot(name: str, summary: list[Row], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [" / ".join(str(row[k]) for k in TABLE_KEYS[name]) for row in summary]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, metric in zip(axes, ("r2", "cosine", "accuracy")):
        ax.bar(range(len(summary)), [r[metric] for r in summary], yerr=[r[f"{metric}_sd"] for r in summary])
        ax.set_xticks(range(len(summary)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric)
    fig.suptitle(TITLES[name])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder of RESULTS.md, results.json, plots")
    parser.add_argument("--upstream", help="unlabelled audio folder (default: the demo dataset's upstream/)")
    parser.add_argument("--labelled", help="labelled audio: UrbanSound8K layout or one folder per class")
    parser.add_argument("--teacher", help="cascade teacher model (default: edgel3/sea-64 when cached)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "sea-tf-bench-science"))
    parser.add_argument("--tables", default="head", help=f"comma list of {', '.join(TABLES)}")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="tiny data and students, a few steps (schema check)")
    args = parser.parse_args(argv)
    settings = Settings(d=args.d, steps=args.steps, batch_size=32, learning_rate=1e-3, filters=[8, 16, 32, args.d],
                        seeds=[int(s) for s in args.seeds.split(",")], max_windows=1200)
    if args.quick:
        settings = Settings(d=4, steps=3, batch_size=8, learning_rate=1e-3, filters=[4, 4, 8, 4], seeds=[0],
                            max_windows=60)
    names = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in names if t not in TABLES]
    if unknown or names[:1] != ["head"]:
        parser.error(f"--tables: the head table first, then any of {', '.join(TABLES)}; got {args.tables!r}")
    start = time.perf_counter()
    study = prepare(args, settings)
    results: dict[str, Any] = {"schema": SCHEMA, "teacher": study.teacher_name, "teacher_is_trained":
                               study.teacher_is_trained, "settings": vars(settings), "notes": study.notes,
                               "tables": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        rows = TABLES[name](study)
        summary = summarise(rows, TABLE_KEYS[name])
        results["tables"][name] = {"rows": rows, "summary": summary}
        plot(name, summary, out / f"{name}.png")
        print(json.dumps(summary), flush=True)
    results["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["wall_s"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "RESULTS.md").write_text(markdown(results))
    return results


if __name__ == "__main__":
    main()
