"""``sea-tf export``: :func:`export_model` (the stage's entry point: the resolved config) runs
:func:`export_file`, one model (and optionally its downstream classifier) in every mode, plus the report.

Straight-line flow::

    model + card ─► calibration windows (real audio) ─► per mode: placement ─► convert (builtin ops only)
        ─► OUT/<name>.<mode>.tflite + .json sidecar ─► LiteRT fidelity/cost on held-out audio ─► report

``<name>`` is the model file's stem (``student.keras`` → ``student``) unless ``cfg["name"]`` says
otherwise; a QAT student (``student-qat.h5``, card ``qat``) is converted with its learnt ranges
beside the float student's PTQ files (:mod:`export.qat`). Held-out windows never come from a
calibration row or a calibration source file (:mod:`export.calibration`).
"""
import csv
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from device.frontends import compute_frontend
from export import calibration as calib
from export import fidelity, identity, int8_body, metadata, report
from export import qat as qat_export
from export.convert import CALIBRATED_MODES, IO_TYPES, SavedGraphs, check_builtin_ops, convert, parse_modes
from export.defaults import DEFAULTS
from export.placement import export_graph, frontend_in_model, measured_placement
from sea_tf.config import merge, write_resolved
from sea_tf.errors import ConfigError, ExportError
from sea_tf.models import SeaModel, load_model

CARD_KEYS = ("name", "sample_rate", "frame_samples", "embedding_size", "frontend")


def resolve_model(spec: Any) -> SeaModel:
    """A :class:`SeaModel` with a usable card, or :class:`ExportError`."""
    if qat_export.qat_card(spec) is not None:
        raise ExportError(f"{spec}: a QAT student; export it with its float student "
                          f"(`sea-tf export FLOAT.keras --qat-model {spec}`)")
    model = spec if isinstance(spec, SeaModel) else load_model(spec)
    card = getattr(model, "card", None)
    missing = [k for k in CARD_KEYS if not isinstance(card, dict) or k not in card]
    if missing:
        raise ExportError(f"model {spec if not isinstance(spec, SeaModel) else model.keras.name!r} has no usable "
                          f"card (missing {', '.join(missing)}); export models saved by sea-tf (SeaModel.save "
                          "writes <name>.card.json) or published .h5 files")
    return model


def _windows(source: Any, sample_rate: int, settings: dict[str, Any], what: str, *, exclude: Collection[str] = (),
             only: Collection[str] | None = None) -> tuple[npt.NDArray[np.float32], list[str], str]:
    """(windows, origin, description) from paths or an in-memory array; see :func:`export.calibration.draw_windows`."""
    if isinstance(source, np.ndarray):
        windows = calib.check_windows(source, sample_rate, what=what)
        return windows[: int(settings["windows"])], [f"array[{i}]" for i in range(len(windows))], "in-memory windows"
    windows, origin = calib.draw_windows(source, sample_rate, settings["windows"], seed=settings["seed"],
                                         hop_size=settings["hop_size"], what=what, exclude=exclude, only=only,
                                         allow_partial=settings.get("allow_partial", False))
    files = len(set(origin))
    return windows, origin, f"{files} file(s) from {', '.join(map(str, _as_list(source)))}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, Path)) else list(value)


def export_model(cfg: dict[str, Any], *, log: Callable[[str], object] | None = None) -> dict[str, Any]:
    """``sea-tf export``: convert ``cfg["model"]`` in every mode of ``cfg["modes"]`` (:func:`export_file`).

    Parameters
    ----------
    cfg : dict
        The resolved ``export`` config (``configs/export/defaults.yaml``;
        ``sea_tf.config.load("export", model="runs/a/student.keras", out="exports/")``).
    log : callable, optional
        Called with one-line progress messages.

    Returns
    -------
    dict
        The report summary of :func:`export_file`; the resolved config is written as
        ``OUT/export.config.yaml``.

    Raises
    ------
    ConfigError
        No model given.
    """
    if not cfg["model"]:
        raise ConfigError("no model given; pass MODEL (a preset, .keras or .h5) or set 'model' in --config")
    out = Path(cfg["out"])
    summary = export_file(cfg["model"], out, cfg=cfg, progress=cfg["progress"], log=log)
    write_resolved(cfg, out, "export")
    return summary


def export_file(model: Any, out_dir: Path | str, *, modes: str | Sequence[str] | None = None,
                 calibration: str | Path | Sequence[str | Path] | np.ndarray | None = None,
                 held_out: str | Path | Sequence[str | Path] | np.ndarray | None = None,
                 classifier: str | Path | None = None, cfg: dict[str, Any] | None = None, progress: bool,
                 log: Callable[[str], object] | None = None, qat: str | Path | None = None) -> dict[str, Any]:
    """Convert ``model`` in each mode, measure every file on held-out audio, write the report.

    Parameters
    ----------
    model : str, Path or SeaModel
        Anything :func:`sea_tf.models.load_model` takes; it must carry a card.
    out_dir : str or Path
        Receives ``<name>.<mode>.tflite`` + ``.json`` sidecars and ``report.{json,md,png}``.
    modes : str or list of str, optional
        Subset of :data:`export.convert.MODES` (default ``cfg["modes"]``).
    calibration : paths or np.ndarray [shape=(n, frame_samples)], optional
        Real audio for ``int8`` / ``int16x8`` (files, directories, teacher shards or windows at the
        model's rate); default ``cfg["calibration"]["sources"]``.
    held_out : paths or np.ndarray, optional
        Audio for the fidelity figures; default ``cfg["held_out"]["sources"]``, else windows of the
        calibration files not used for calibration.
    classifier : str or Path, optional
        A downstream classifier ``.keras`` with its card (``sea-tf classify final``), exported in
        the same modes.
    qat : str or Path, optional
        The QAT student of the same distill run (``student-qat.h5`` with its card; default
        ``cfg["qat"]``), exported in the requested modes among :data:`export.qat.QAT_MODES` with
        its learnt ranges, its fidelity measured against ``model`` on the same held-out windows.
        ``model`` may itself be the QAT file: its card links the float student, which is then
        exported beside it.
    cfg : dict, optional
        Settings (schema :data:`export.defaults.DEFAULTS`; nested keys may be given partially).
    progress : bool
    log : callable, optional
        Called with one-line progress messages.

    Returns
    -------
    dict
        The report summary (also ``out_dir/<name>.report.json``): ``artifacts`` (one dict per file with
        paths, sizes, fidelity and latency), calibration / held-out descriptions, settings.
    """
    cfg = merge(DEFAULTS, cfg or {})  # deep merge; an unknown setting is a ConfigError
    log = log or (lambda msg: None)
    out_dir = Path(out_dir)
    modes = parse_modes(modes if modes is not None else cfg["modes"])
    if cfg["int8_io"] not in IO_TYPES:
        raise ExportError(f"int8_io must be one of {IO_TYPES}; got {cfg['int8_io']!r}")
    qat = cfg.get("qat") if qat is None else qat
    spec, qat_spec, qat_card = _pair_qat(model, qat)
    model = resolve_model(spec)
    name = identity.default_name(spec, model.name, override=cfg["name"])
    source = identity.source_of(spec, model.name)
    qat_rows: list[str] = []
    if qat_spec is not None and qat_card is not None:      # (both set, or neither)
        qat_export.check_pair(source, model.card, qat_spec, qat_card)
        qat_rows = qat_export.qat_modes(modes)
        if not qat_rows:
            raise ExportError(f"{qat_spec}: a QAT student exports in {' or '.join(qat_export.QAT_MODES)}; add one to "
                              f"--modes (got {','.join(modes)})")
        qat_name = f"{cfg['name']}-qat" if cfg["name"] else identity.default_name(qat_spec, qat_card["name"])
        qat_source = identity.source_of(qat_spec, qat_card["name"])
    classifier = cfg.get("classifier") if classifier is None else classifier
    cls_model, cls_card = (_load_classifier(classifier, model) if classifier is not None
                           else (None, None))
    calibration = cfg["calibration"]["sources"] if calibration is None else calibration
    held_out = cfg["held_out"]["sources"] if held_out is None else held_out
    sr = model.sample_rate
    planned = [(metadata.artifact_stem(name, m), source) for m in modes]
    planned += [(metadata.artifact_stem(qat_name, m), qat_source) for m in qat_rows]
    if cls_card is not None:                # (set with cls_model)
        cls_source = identity.source_of(classifier, cls_card["name"])
        planned += [(metadata.artifact_stem(cls_card["name"], m), cls_source)
                    for m in (parse_modes(cfg["classifier_modes"]) if cfg["classifier_modes"] else modes)]
    identity.check_targets(out_dir, planned, overwrite=cfg["overwrite"])  # before any conversion: nothing written

    needs_calibration = any(m in CALIBRATED_MODES for m in modes + qat_rows)
    has_cal = isinstance(calibration, np.ndarray) or bool(_as_list(calibration))
    if needs_calibration and not has_cal:
        raise ExportError(f"modes {', '.join(m for m in modes if m in CALIBRATED_MODES)} need calibration audio; "
                          "pass --calibration with audio files, directories or teacher shards")
    cal, cal_desc, held, held_origin, held_info = _calibration_and_held_out(calibration, held_out, sr, cfg, has_cal)
    log(f"calibration: {0 if cal is None else len(cal)} windows; held-out: {len(held)} windows at {sr} Hz "
        f"({held_info['description']})")

    reference = model.embed_frames(held)
    downstream = _Downstream(cls_model, cls_card, reference, held_origin) if cls_card is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    artifacts: list[dict[str, Any]] = []
    lat = cfg["latency"]
    # One Keras graph per placement, each saved once for all its modes (export.convert.SavedGraphs).
    graphs: dict[bool, Any] = {}
    with SavedGraphs() as saved:
        for mode in tqdm(modes, desc=f"export {name}", unit="mode", disable=not progress):
            inside = frontend_in_model(mode, placement=cfg["placement"])
            rep, cal_x, prepared = None, None, None
            if mode in CALIBRATED_MODES and cal is not None:     # (always set for these modes: checked above)
                cal_x = cal if inside else compute_frontend(cal, model.frontend)
                rep = calib.representative_dataset(cal_x)
            start = time.perf_counter()
            graph = _graph(graphs, model, inside, cfg["dft"])
            if mode == "int8" and not inside and cal_x is not None:
                graph, prepared = int8_body.prepare_body(graph, cal_x, cfg["int8_body"])
            data = convert(graph, mode, representative=rep, io=cfg["int8_io"], name=name, saved=saved)
            placed = None
            if inside and cfg["placement"] == "measure":     # both placements exact here: keep the faster
                inside, data, placed = measured_placement(
                    data, lambda: convert(_graph(graphs, model, False, cfg["dft"]), mode, representative=None,
                                          io=cfg["int8_io"], name=name, saved=saved),
                    card=model.card, frontend=model.frontend, mode=mode, frames=held, threads=lat["threads"])
            convert_s = time.perf_counter() - start
            cal_info = _cal_info(mode, cal, cal_desc, cfg)
            if prepared is not None and cal_info is not None:
                cal_info["int8_body"] = prepared
            meta = metadata.build_sidecar(
                data, model.card, mode, inside, model.frontend, "raw_audio" if inside else "frontend_features",
                "embedding", operators=check_builtin_ops(data), calibration=cal_info, source=source,
                extra={"dft": cfg["dft"] if inside else None, **({"placement": placed} if placed else {})})
            path = metadata.write_artifact(out_dir, metadata.artifact_stem(name, mode), data, meta)
            result, outputs = fidelity.measure_embedding(path, held, reference, runs=lat["runs"], warmup=lat["warmup"],
                                                       threads=lat["threads"])
            if downstream is not None:
                result.update(downstream.effect(outputs))
            artifacts.append(_row(name, mode, path, meta, result, convert_s))
            log(f"{path.name}: {result['size_bytes'] / 1024:.0f} KB, cosine mean {result['cosine_mean']:.5f}, "
                f"end-to-end {result['end_to_end_ms']:.3f} ms")

    qat_info = None
    if qat_rows and qat_spec is not None and qat_card is not None:
        qat_student = qat_export.QatStudent(qat_spec, qat_card)
        rows, qat_info = _export_qat(qat_student, qat_rows, qat_name, qat_source, model, name, cal, cal_desc, held,
                                     reference, downstream, out_dir, cfg, progress, log)
        artifacts += rows
    if downstream is not None:
        cls_modes = parse_modes(cfg["classifier_modes"]) if cfg["classifier_modes"] else modes
        artifacts += _export_classifier(downstream, model, cls_modes, cal, cal_desc, out_dir, cfg, progress, log,
                                        cls_source)
    summary = {"format": "sea-tf-export-report/1", "model": name, "model_card": model.card, "source": source,
               "out_dir": str(out_dir), "modes": modes, "qat": qat_info,
               "calibration": {"n_windows": 0 if cal is None else int(len(cal)), "description": cal_desc},
               "held_out": {"n_windows": int(len(held)), **held_info},
               "threads": lat["threads"], "latency_runs": lat["runs"],
               "interpreter": artifacts[0]["interpreter"] if artifacts else {},
               "settings": {k: cfg[k] for k in ("placement", "dft", "int8_io", "int8_body")},
               "artifacts": artifacts}
    summary["report"] = {k: str(v) for k, v in report.write_report(summary, out_dir, name=name).items()}
    return summary


def _graph(graphs: dict[bool, Any], model: SeaModel, inside: bool, dft: str) -> Any:
    """The export graph of one placement, built on its first use (the same Keras object for every mode)."""
    if inside not in graphs:
        graphs[inside] = export_graph(model, inside, dft=dft)
    return graphs[inside]


def _pair_qat(spec: Any, qat: str | Path | None) -> tuple[Any, Path | None, dict[str, Any] | None]:
    """(float model spec, QAT file or None, QAT card or None): a QAT file named as MODEL brings its float student."""
    card = qat_export.qat_card(spec)
    if card is not None:
        if qat is not None and Path(qat).expanduser().resolve() != Path(spec).expanduser().resolve():
            raise ExportError(f"{spec} is itself a QAT student and --qat-model names another ({qat}); pass the float "
                              "student as MODEL")
        return qat_export.float_student(spec, card), Path(spec), card
    if qat is None:
        return spec, None, None
    card = qat_export.qat_card(qat)
    if card is None:
        raise ExportError(f"{qat}: not a QAT student (--qat-model takes the student-qat.h5 that `sea-tf distill --qat` "
                          "writes, with its card)" if Path(qat).expanduser().is_file() else
                          f"{qat}: no such QAT student file; check the path")
    return spec, Path(qat), card


def _calibration_and_held_out(calibration: Any, held_out: Any, sr: int, cfg: dict[str, Any], has_cal: bool
                              ) -> tuple[npt.NDArray[np.float32] | None, str, npt.NDArray[np.float32], list[str],
                                         dict[str, Any]]:
    """Calibration windows and held-out windows that share no row and no source file.

    Returns
    -------
    cal : np.ndarray or None
    cal_desc : str
    held : np.ndarray
    held_origin : list of str
    held_info : dict
        ``description`` and ``excluded`` (calibration source files / windows left out of the held-out draw).
    """
    given = isinstance(held_out, np.ndarray) or bool(_as_list(held_out))
    cal_paths = has_cal and not isinstance(calibration, np.ndarray)
    cal: npt.NDArray[np.float32] | None = None
    cal_origin: list[str] = []
    cal_desc = "none (no calibrated mode)"
    if not given:
        if not has_cal:
            raise ExportError("no held-out audio to measure fidelity on; pass --held-out (or --calibration) audio")
        if not cal_paths:
            calib.check_windows(calibration, sr, what="calibration")  # a malformed array says so first
            raise ExportError("in-memory calibration windows have no source files to keep apart; pass held-out "
                              "windows (--held-out) too")
        # One pool of source files, split by file before anything is drawn: no held-out window shares
        # a recording with a calibration window, whether it comes from an audio file or a shard row.
        pool = calib.source_files(calibration, sr, allow_partial=cfg["calibration"].get("allow_partial", False))
        held_files = calib.split_held_out_files(pool, cfg["held_out"]["fraction"], seed=cfg["held_out"]["seed"])
        cal, cal_origin, cal_desc = _windows(calibration, sr, cfg["calibration"], "calibration", exclude=held_files)
        held, held_origin, _ = _windows(calibration, sr, cfg["held_out"], "held-out", only=held_files)
        excluded = calib.excluded_counts(calibration, set(pool) - set(held_files),
                                         allow_partial=cfg["held_out"].get("allow_partial", False))
        files = len(set(held_origin))
        desc = (f"{files} file(s) of {len(pool)} in {', '.join(map(str, _as_list(calibration)))}, kept apart from "
                f"calibration by file ({len(held_files)} held-out file(s); the other {excluded['files']} file(s), "
                f"{excluded['windows']} shard window(s) among them, calibrate only)")
        return cal, cal_desc, held, held_origin, {"description": desc, "excluded": excluded, "split": "by file"}
    if has_cal:
        cal, cal_origin, cal_desc = _windows(calibration, sr, cfg["calibration"], "calibration")
    if isinstance(held_out, np.ndarray):
        held, held_origin, desc = _windows(held_out, sr, cfg["held_out"], "held-out")
        return cal, cal_desc, held, held_origin, {"description": desc + " (given by the caller)",
                                                  "excluded": {"files": 0, "windows": 0}}
    # Given held-out sources: leave out every calibration source file (and so every calibration row).
    used = sorted(set(cal_origin)) if cal_paths else []   # canonical names of the recordings calibration drew from
    excluded = calib.excluded_counts(held_out, used, allow_partial=cfg["held_out"].get("allow_partial", False))
    held, held_origin, desc = _windows(held_out, sr, cfg["held_out"], "held-out", exclude=used)
    if used:
        desc += (f" (left out {excluded['files']} file(s), {excluded['windows']} shard window(s) among them, of the "
                 f"{len(used)} recording(s) calibration drew from)")
    return cal, cal_desc, held, held_origin, {"description": desc, "excluded": excluded}


def _cal_info(mode: str, cal: np.ndarray | None, desc: str, cfg: dict[str, Any]) -> dict[str, Any] | None:
    if mode not in CALIBRATED_MODES or cal is None:
        return None
    return {"n_windows": int(len(cal)), "description": desc, "seed": cfg["calibration"]["seed"],
            "hop_size": cfg["calibration"]["hop_size"], "int8_io": cfg["int8_io"] if mode == "int8" else "float"}


def _row(name: str, mode: str, path: Path, meta: dict[str, Any], result: dict[str, Any],
         convert_s: float) -> dict[str, Any]:
    source = meta.get("source") or {}
    return {"model": name, "mode": mode, "path": str(path), "sidecar": str(metadata.sidecar_path(path)),
            "sha256": meta["sha256"], "source_sha256": source.get("sha256"), "source": source.get("path"),
            "frontend_in_model": meta["frontend_in_model"], "input_kind": meta["input"]["kind"],
            "input_dtype": meta["input"]["dtype"], "output_dtype": meta["output"]["dtype"],
            "convert_s": round(convert_s, 2), **result}


def _load_classifier(path: str | Path, model: SeaModel) -> tuple[Any, dict[str, Any]]:
    from sea_tf.classify.final import load_classifier

    keras_model, card = load_classifier(path)
    size = card.get("embedding_size")
    if size is not None and int(size) != model.embedding_size:
        raise ExportError(f"{path}: the classifier takes {size}-d embeddings but {model.name} makes "
                          f"{model.embedding_size}-d ones; pass the embedding model it was trained on")
    return keras_model, card


class _Downstream:
    """The Keras classifier's view of the held-out windows: reference probabilities, labels, accuracy."""

    def __init__(self, keras_model: Any, card: dict[str, Any], reference: np.ndarray, held_origin: Sequence[str]) -> None:
        self.model, self.card = keras_model, card
        self.reference = reference
        self.probs = self.predict(reference)
        self.labels, self.clip_ids = held_out_labels(held_origin, card.get("classes") or [])
        self.accuracy = fidelity.clip_accuracy(self.probs, self.labels, self.clip_ids)

    def predict(self, embeddings: npt.ArrayLike) -> np.ndarray:
        return self.model.predict(np.asarray(embeddings, np.float32), verbose=0, batch_size=256)

    def effect(self, embeddings: npt.ArrayLike) -> dict[str, Any]:
        """How the Keras classifier's decisions change when fed an exported model's ``embeddings``."""
        probs = self.predict(embeddings)
        out: dict[str, Any] = {"top1_agreement": float(np.mean(probs.argmax(1) == self.probs.argmax(1))),
               "reference_clip_accuracy": self.accuracy}
        acc = fidelity.clip_accuracy(probs, self.labels, self.clip_ids)
        if acc is not None and self.accuracy is not None:     # the same labels: both known or neither
            out["clip_accuracy"], out["accuracy_change"] = acc, acc - self.accuracy
        return out


def _export_classifier(downstream: _Downstream, model: SeaModel, modes: Sequence[str], cal: np.ndarray | None,
                       cal_desc: str, out_dir: Path, cfg: dict[str, Any], progress: bool, log: Callable[[str], object],
                       source: dict[str, Any]) -> list[dict[str, Any]]:
    """Export the classifier in ``modes``; each file is measured on the Keras model's held-out embeddings."""
    lat = cfg["latency"]
    card = downstream.card
    cal_emb = model.embed_frames(cal) if cal is not None else None
    rows: list[dict[str, Any]] = []
    with SavedGraphs() as saved:        # one save of the classifier for all its modes
        for mode in tqdm(modes, desc=f"export {card['name']}", unit="mode", disable=not progress):
            rep = calib.representative_dataset(cal_emb) if mode in CALIBRATED_MODES and cal_emb is not None else None
            start = time.perf_counter()
            data = convert(downstream.model, mode, representative=rep, io=cfg["int8_io"], name=card["name"],
                           saved=saved)
            convert_s = time.perf_counter() - start
            meta = metadata.build_sidecar(
                data, card, mode, False, None, "embedding", "probabilities", operators=check_builtin_ops(data),
                classes=card.get("classes"), calibration=_cal_info(mode, cal_emb, f"embeddings of {cal_desc}", cfg),
                source=source, extra={"embedding_model": model.name})
            path = metadata.write_artifact(out_dir, metadata.artifact_stem(card["name"], mode), data, meta)
            result, _ = fidelity.measure_classifier(
                path, downstream.reference, downstream.probs, runs=lat["runs"], warmup=lat["warmup"],
                threads=lat["threads"], labels=downstream.labels, clip_ids=downstream.clip_ids,
                reference_accuracy=downstream.accuracy)
            result["reference_clip_accuracy"] = downstream.accuracy
            rows.append(_row(card["name"], mode, path, meta, result, convert_s))
            log(f"{path.name}: top-1 agreement {result['top1_agreement']:.3f} with the Keras classifier")
    return rows


def _export_qat(student: qat_export.QatStudent, modes: Sequence[str], name: str, source: dict[str, Any], model: SeaModel,
                float_name: str, cal: np.ndarray | None, cal_desc: str, held: npt.NDArray[np.float32],
                reference: np.ndarray, downstream: _Downstream | None, out_dir: Path, cfg: dict[str, Any],
                progress: bool, log: Callable[[str], object]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Convert the QAT body with its learnt ranges; each file is measured against the float student's reference.

    Returns
    -------
    rows : list of dict
        Report rows (``qat: true``, ``reference``: the float artifact name) with, beside the
        fidelity vs the float student, ``qat_keras_*``: fidelity vs the QAT Keras model itself.
    info : dict
        The report's ``qat`` entry.
    """
    lat = cfg["latency"]
    qat_reference = student.embed_frames(held)
    keras_vs_float = fidelity.compare(qat_reference, reference)
    rows: list[dict[str, Any]] = []
    for mode in tqdm(modes, desc=f"export {name}", unit="mode", disable=not progress):
        rep = None
        if mode == "int8" and cal is not None:  # ranges for what QAT left in float: the input and the input batch norm
            rep = calib.representative_dataset(compute_frontend(cal, model.frontend))
        start = time.perf_counter()
        data = convert(student.body, mode, representative=rep, io=cfg["int8_io"], name=name)
        convert_s = time.perf_counter() - start
        cal_info = _cal_info(mode, cal, cal_desc, cfg)
        if cal_info is not None:
            cal_info["used_for"] = "the input and input batch norm only (QAT learnt the body's ranges)"
        meta = metadata.build_sidecar(
            data, student.card, mode, False, student.card["frontend"], "frontend_features", "embedding",
            operators=check_builtin_ops(data), calibration=cal_info, source=source,
            extra={"dft": None, "qat": {"ranges": "learnt (tfmot fake quantization)", "float_student": float_name,
                                        "scheme": student.card["qat"].get("scheme")}})
        path = metadata.write_artifact(out_dir, metadata.artifact_stem(name, mode), data, meta)
        result, outputs = fidelity.measure_embedding(path, held, reference, runs=lat["runs"], warmup=lat["warmup"],
                                                   threads=lat["threads"])
        own = fidelity.compare(outputs, qat_reference)
        result.update({f"qat_keras_{k}": own[k] for k in ("cosine_mean", "cosine_p5", "cosine_worst")})
        if downstream is not None:
            result.update(downstream.effect(outputs))
        rows.append({**_row(name, mode, path, meta, result, convert_s), "qat": True, "reference": float_name})
        log(f"{path.name} (QAT): cosine mean {result['cosine_mean']:.5f} vs the float student, "
            f"{own['cosine_mean']:.5f} vs its own Keras model")
    info = {"path": str(student.path), "name": name, "float_student": float_name, "modes": modes,
            "keras_vs_float": {k: keras_vs_float[k] for k in ("cosine_mean", "cosine_p5", "cosine_worst")}}
    return rows, info


def held_out_labels(origin: Sequence[str], classes: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Class index and clip id of each held-out window, from an UrbanSound8K-layout metadata CSV.

    The CSV (``metadata/UrbanSound8K.csv``, columns ``slice_file_name`` and ``class``) is looked
    for up to three directories above each file. Windows without a known label get ``-1``.

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=int64]
    clip_ids : np.ndarray [shape=(n,), dtype=int64]
    """
    index: dict[str | None, int] = {c: i for i, c in enumerate(classes)}
    tables: dict[Path, dict[str, str]] = {}
    labels: list[int] = []
    clip_of: dict[str, int] = {}
    for item in origin:
        path = Path(item)
        label = -1
        for root in list(path.parents)[:3]:
            meta = root / "metadata" / "UrbanSound8K.csv"
            if meta.is_file():
                if meta not in tables:
                    with open(meta, newline="") as fh:
                        tables[meta] = {r["slice_file_name"]: r["class"] for r in csv.DictReader(fh)}
                label = index.get(tables[meta].get(path.name), -1)
                break
        labels.append(label)
        clip_of.setdefault(item, len(clip_of))
    return np.asarray(labels, np.int64), np.asarray([clip_of[o] for o in origin], np.int64)
