"""``sea-tf report``: merge export, classification and device JSONs into one accuracy-vs-cost report.

The entry point is :func:`build` (the resolved ``report`` config and the result files in);
:func:`write_report` does the work from explicit arguments (the demo calls it with results in memory).

Inputs are recognised by their content, so any mix of files (or directories searched for
``*.json``) can be given:

- device results of ``python -m device.bench`` / ``sea-tf device run`` (``"schema":
  "sea-tf/device-bench/1"``): latency, memory, size, per (model, mode, device);
- export sidecars ``X.json`` (``sha256``, ``mode``, ``frontend_in_model``, ``model_card``) and the
  ``artifacts`` rows of an export ``report.json``: size;
- classification results of ``sea-tf classify`` (``results.json`` with ``accuracy_mean`` or
  ``comparison.json`` with ``models: {name: summary}``), also when nested in a demo ``report.json``;
- SONYC-UST results of ``sea-tf classify ust`` (``results.json`` / ``comparison.json`` with
  ``micro_auprc``): a table of their own (micro/macro AUPRC, micro F1), and the rows' ``ust_*`` fields.

One row is one artifact (a ``.tflite``) on one device. Results are joined by the identity of the
files, never by display names, which differ between stages (``sea-tf classify`` names a model after
its file, a model card after its preset) and collide (two students of one preset):

- an artifact is the ``sha256`` of its ``.tflite`` (sidecar ``sha256``, device result
  ``model.sha256``, export report row ``sha256``); it was converted from the model file whose sha256
  is its ``source_sha256`` (sidecar ``source.sha256``, device ``model.source_sha256``, export row
  ``source_sha256``; null for a preset built in memory);
- a classification result names the file it evaluated by ``model_sha256`` (the ``.keras``/``.h5``,
  or the ``.tflite`` itself; null for a preset without a file).

A row's accuracy is *measured* when a classification result's ``model_sha256`` is the artifact's
``sha256``; else it is *inherited* (marked "†") from the result whose ``model_sha256`` is the
artifact's ``source_sha256``, i.e. the float model's accuracy. Inherited accuracy is shown in the
table but is never a Pareto point: it says nothing about what quantization did. The Pareto front is
the set of measured rows no other row beats on both accuracy (higher) and cost (lower).

Names join only where a hash is missing: results written before these fields existed, and presets
built in memory on both sides. Then a ``.tflite`` result joins the artifact of the same stem
(``<name>.<mode>``), and a float result the artifact whose source file stem, export name or
model-card name is its name (``aliases`` rename a result's name, the legacy ``--alias``).
"""
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sea_tf import atomic
from sea_tf.config import write_resolved
from sea_tf.errors import DataError
from sea_tf.report_html import SCHEMA as PAGE_SCHEMA
from sea_tf.report_html import write_tune_page
from sea_tf.runs import RUN_ID_RE

DEVICE_SCHEMA = "sea-tf/device-bench/1"

#: One row of the report (:func:`build_rows`): column name -> value (str, float, int, bool or None).
Row = dict[str, Any]


class _Absent:
    """A hash field the input does not have at all (written before the identity contract), as
    opposed to ``None``: the input says there is no file to hash (a preset built in memory)."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT = _Absent()
#: A hash field: a hex digest, None (no file to hash) or :data:`ABSENT` (the input does not say).
Hash = str | None | _Absent


def find_json(inputs: Iterable[Path | str]) -> list[Path]:
    """JSON files among ``inputs`` (files, or directories searched recursively), in order.

    In a directory of ``sea-tf device run`` results (``OUT/<user@host>/<run-id>/``) only each
    host's latest run is read: the older runs are still there, and merging them would report stale
    numbers beside new ones. Name a run directory (or its files) to read that run instead.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            runs: dict[Path, list[str]] = {}
            files += sorted(p for p in path.rglob("*.json") if not p.name.startswith(".") and _in_latest_run(p, path, runs))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such results file or directory; pass the JSONs written by "
                            "`sea-tf export`, `sea-tf classify` and `sea-tf device run`")
    return files


def _in_latest_run(path: Path, root: Path, runs: dict[Path, list[str]]) -> bool:
    """False for a file of ``root`` that belongs to an older device run than its host's latest, or
    that lies loose beside run directories (the layout before run ids). ``runs``: a cache, folder ->
    names of the run directories in it."""
    parts = path.relative_to(root).parts[:-1]
    for depth in range(len(parts) + 1):
        folder = root.joinpath(*parts[:depth])
        if folder not in runs:
            runs[folder] = [p.name for p in folder.iterdir() if p.is_dir() and RUN_ID_RE.fullmatch(p.name)]
        if runs[folder] and (depth == len(parts) or parts[depth] != max(runs[folder])):
            return False
    return True


@dataclass
class Artifact:
    """One ``.tflite`` as the inputs describe it (merged from its sidecar, export row, device results).

    ``sha256`` / ``source_sha256``: hex digests, ``None`` (no file) or :data:`ABSENT` (not said).
    ``names``: the names a float result may carry when only names can join (source file stem,
    export name, model-card name), most specific first.
    """
    stem: str
    mode: str
    sha256: Hash = ABSENT
    source_sha256: Hash = ABSENT
    card: str | None = None
    names: list[str] = field(default_factory=list)
    size_bytes: int | None = None

    @property
    def key(self) -> str:
        return self.sha256 if isinstance(self.sha256, str) else f"stem:{self.stem}"

    @property
    def name(self) -> str:
        """The display name: the stem without its mode (``student.int8`` -> ``student``)."""
        return self.stem[: -len(self.mode) - 1] if self.stem.endswith(f".{self.mode}") else self.stem

    def merge(self, other: "Artifact") -> "Artifact":
        """Fill what this record lacks from ``other`` (another description of the same file)."""
        for attr in ("sha256", "source_sha256", "card", "size_bytes"):
            if getattr(self, attr) in (None, ABSENT) and getattr(other, attr) not in (None, ABSENT):
                setattr(self, attr, getattr(other, attr))
        self.names += [n for n in other.names if n not in self.names]
        return self


@dataclass
class Evaluation:
    """One classification (or SONYC-UST) result of one model file.

    ``key``: its name for joins by name (a ``.tflite`` result: the artifact stem; else the
    result's name after ``aliases``). ``tflite``: the evaluated file is an artifact itself.
    """
    name: str
    key: str
    tflite: bool
    sha256: Hash
    source_sha256: Hash
    figures: dict[str, Any]

    @property
    def identity(self) -> str:
        return self.sha256 if isinstance(self.sha256, str) else f"name:{self.key}"


class Collection:
    """Everything recognised in the inputs.

    Attributes
    ----------
    artifacts : dict
        ``sha256 -> Artifact`` from export sidecars and report rows.
    device : list
        ``(Artifact, device, device-bench result)`` in input order; joined to ``artifacts`` by
        :func:`build_rows`.
    accuracy : dict
        ``identity -> Evaluation`` with figures ``accuracy``, ``accuracy_std``, ``dataset``, ``n_folds``:
        one dataset's (:meth:`choose_dataset`), so that one model's UrbanSound8K and ESC-50 results
        never stand in one column.
    other_datasets : dict
        ``dataset -> number of results`` of the datasets the table does not show.
    ust : dict
        ``identity -> Evaluation`` with figures ``micro_auprc``, ``macro_auprc``, ``micro_f1``,
        ``n_files`` (SONYC-UST, validate split).
    ignored : list of str
        Input files that held nothing recognisable.
    """

    def __init__(self, aliases: Mapping[str, str] | None = None) -> None:
        self.artifacts: dict[str, Artifact] = {}
        self.device: list[tuple[Artifact, str | None, dict[str, Any]]] = []
        self.accuracy: dict[str, Evaluation] = {}
        self.ust: dict[str, Evaluation] = {}
        self.ignored: list[str] = []
        self.aliases = dict(aliases or {})
        self.by_dataset: dict[str | None, dict[str, Evaluation]] = {}
        self.other_datasets: dict[str, int] = {}

    def choose_dataset(self) -> None:
        """Show one dataset's accuracy: the one with the most results (ties: by name); count the rest."""
        if not self.by_dataset:
            return
        ranked = sorted(self.by_dataset.items(), key=lambda item: (-len(item[1]), str(item[0])))
        self.accuracy = dict(ranked[0][1])
        self.other_datasets = {str(name): len(evs) for name, evs in ranked[1:]}

    def add_file(self, path: Path | str) -> None:
        """Read one JSON file and :meth:`add` it; listed in ``ignored`` when nothing in it is recognised."""
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not readable JSON ({exc}); pass the result files themselves") from exc
        if not self.add(obj, source=path):
            self.ignored.append(str(path))

    def add(self, obj: object, *, source: Path | None = None, hint: str | None = None) -> int:
        """Recognise ``obj`` (and what is nested in it); returns how many records were taken.

        ``source``: the file ``obj`` was read from (an export sidecar names its ``.tflite`` by it);
        ``hint``: the key ``obj`` was found under, the model name of a result that does not say it.
        """
        if isinstance(obj, list):
            return sum(self.add(o, hint=hint) for o in obj)
        if not isinstance(obj, dict):
            return 0
        if obj.get("schema") == DEVICE_SCHEMA:
            m = obj["model"]
            art = Artifact(stem=_stem(m["path"]), mode=m["mode"], sha256=_hash(m, "sha256"),
                           source_sha256=_hash(m, "source_sha256"), card=m.get("name"),
                           names=[n for n in [m.get("name")] if n], size_bytes=m.get("size_bytes"))
            self.device.append((art, obj.get("device") or obj["environment"].get("hostname"), obj))
            return 1
        if {"sha256", "mode", "frontend_in_model"} <= obj.keys():
            return self._add_artifact(obj, source)
        if isinstance(obj.get("models"), dict) and any(isinstance(v, dict) and "accuracy_mean" in v
                                                       for v in obj["models"].values()):
            return sum(self._add_accuracy(name, s, obj) for name, s in obj["models"].items() if isinstance(s, dict))
        named = obj.get("model") or hint
        if "accuracy_mean" in obj and named:
            return self._add_accuracy(named, obj, {})
        if isinstance(obj.get("models"), dict) and any(isinstance(v, dict) and "micro_auprc" in v
                                                       for v in obj["models"].values()):
            return sum(self._add_ust(name, s) for name, s in obj["models"].items() if isinstance(s, dict))
        if "micro_auprc" in obj and named:
            return self._add_ust(named, obj)
        return sum(self.add(v, hint=k) for k, v in obj.items() if isinstance(v, (dict, list)))

    def _add_artifact(self, obj: dict[str, Any], source: Path | None) -> int:
        """An export sidecar, or a row of an export ``report.json`` (which names its ``path``)."""
        tflite = obj.get("path") or obj.get("tflite") or (Path(source).with_suffix(".tflite") if source else None)
        if tflite is None:
            return 0
        tflite = Path(tflite)
        input_kind = obj.get("input_kind") or (obj.get("input") or {}).get("kind")
        if obj.get("classes") or (obj.get("model_card") or {}).get("kind") == "classifier" or input_kind == "embedding":
            return 1  # a classifier is part of every pipeline's cost, not a row of its own
        card = (obj.get("model_card") or {}).get("name")
        src = obj.get("source")
        src_names: list[str | None]
        if isinstance(src, dict):
            source_sha = _hash(src, "sha256")
            src_names = [Path(str(src["path"])).stem if src.get("path") else None, src.get("name")]
        else:
            source_sha, src_names = _hash(obj, "source_sha256"), []
        # an export row's "model" is the export name (the stem's name); a sidecar says it by its file name
        names = [n for n in [*src_names, obj.get("model") if "path" in obj else None, card] if n]
        size = obj.get("size_bytes") or (tflite.stat().st_size if tflite.exists() else None)
        art = Artifact(stem=_stem(tflite), mode=obj["mode"], sha256=_hash(obj, "sha256"), source_sha256=source_sha,
                       card=card, names=list(dict.fromkeys(names)), size_bytes=size)
        if art.key in self.artifacts:
            self.artifacts[art.key].merge(art)
        else:
            self.artifacts[art.key] = art
        return 1

    def _evaluation(self, name: str, summary: dict[str, Any], figures: dict[str, Any]) -> "Evaluation":
        spec = str(summary.get("spec") or "")
        tflite = spec.endswith(".tflite")
        return Evaluation(name=name, key=_stem(spec) if tflite else self.aliases.get(name, name), tflite=tflite,
                          sha256=_hash(summary, "model_sha256"), source_sha256=_hash(summary, "source_sha256"),
                          figures=figures)

    def _add_accuracy(self, name: str, summary: dict[str, Any], parent: dict[str, Any]) -> int:
        if "accuracy_mean" not in summary:
            return 0
        ev = self._evaluation(name, summary, {
            "accuracy": float(summary["accuracy_mean"]), "accuracy_std": summary.get("accuracy_std"),
            "dataset": parent.get("dataset") or summary.get("dataset"),
            "n_folds": parent.get("n_folds") or len(summary.get("per_fold") or {}) or None})
        self.by_dataset.setdefault(ev.figures["dataset"], {})[ev.identity] = ev
        self.accuracy = self.by_dataset[ev.figures["dataset"]]   # until choose_dataset() picks one
        return 1

    def _add_ust(self, name: str, summary: dict[str, Any]) -> int:
        if "micro_auprc" not in summary:
            return 0
        ev = self._evaluation(name, summary, {
            "micro_auprc": float(summary["micro_auprc"]), "macro_auprc": float(summary["macro_auprc"]),
            "micro_f1": summary.get("micro_f1"), "n_files": summary.get("n_validate_scored")})
        self.ust[ev.identity] = ev
        return 1


def collect(inputs: Iterable[Path | str], *, objects: Iterable[object] = (),
            aliases: Mapping[str, str] | None = None) -> Collection:
    """A :class:`Collection` from result files/directories ``inputs`` and in-memory ``objects``.

    ``aliases`` maps a classification result's model name to a name its artifacts carry (e.g.
    ``{"student": "sea-64"}``); only results without hashes need it (module docstring).
    """
    col = Collection(aliases)
    for path in find_json(inputs):
        col.add_file(path)
    for obj in objects:
        col.add(obj)
    col.choose_dataset()
    return col


def _hash(obj: Mapping[str, Any], key: str) -> Hash:
    """``obj[key]`` as a hash: a hex string, None (the input says there is no file) or :data:`ABSENT`."""
    if key not in obj:
        return ABSENT
    return obj[key] if isinstance(obj[key], str) and obj[key] else None


def _join_rank(hash_a: Hash, names_a: Sequence[str], hash_b: Hash, names_b: Sequence[str]) -> int:
    """How well two descriptions name one file: 0 not at all; by name (a hash missing), ranked by
    how specific the first shared name of ``names_a`` is; best, by equal hashes."""
    if isinstance(hash_a, str) and isinstance(hash_b, str):
        return 1000 if hash_a == hash_b else 0
    # a file hashed on one side and "no file" on the other are different models whatever their names
    if hash_a is ABSENT or hash_b is ABSENT or (hash_a is None and hash_b is None):
        for i, name in enumerate(names_a):
            if name in names_b:
                return 999 - i
    return 0


def _best(evaluations: dict[str, Evaluation], hash_a: Hash, names_a: Sequence[str], *,
          tflite: bool) -> Evaluation | None:
    """The evaluation (of a ``.tflite`` when ``tflite``, else of a float model) that best joins; the
    last one read among equals, as a re-run's result is read after the older one it replaces."""
    best: Evaluation | None = None
    best_rank = 0
    for ev in evaluations.values():
        if ev.tflite != tflite and not (isinstance(ev.sha256, str) and ev.sha256 == hash_a):
            continue
        rank = _join_rank(hash_a, names_a, ev.sha256, [ev.key])
        if rank and rank >= best_rank:
            best, best_rank = ev, rank
    return best


def _resolve_device(col: Collection) -> list[tuple[Artifact, str | None, dict[str, Any]]]:
    """``(Artifact, device, result)`` per device result, each artifact joined to its export record:
    by sha256, or (a result without one) by stem when exactly one exported artifact has that stem."""
    by_stem: dict[str, list[Artifact]] = {}
    for art in col.artifacts.values():
        by_stem.setdefault(art.stem, []).append(art)
    runs: dict[tuple[str, str | None], tuple[Artifact, str | None, dict[str, Any]]] = {}
    for art, device, result in col.device:
        if isinstance(art.sha256, str):
            known = col.artifacts.setdefault(art.sha256, art)
        elif len(by_stem.get(art.stem, [])) == 1:
            known = by_stem[art.stem][0]
        else:
            known = col.artifacts.setdefault(art.key, art)
        if known is not art:
            known.merge(art)
        runs[(known.key, device)] = (known, device, result)   # a later result of the same pair replaces it
    return list(runs.values())


def build_rows(col: Collection, *, latency_stat: str) -> list[Row]:
    """One row per (artifact, device), plus rows for artifacts or models without a device run.

    Returns
    -------
    list of dict
        ``model`` (display name), ``card``, ``mode``, ``device``, ``sha256`` (of the artifact, or of
        the model file of an accuracy-only row), ``source_sha256``, ``accuracy`` (fraction or None),
        ``accuracy_std``, ``accuracy_inherited`` (bool), ``accuracy_from`` (the classification
        result's name), ``latency_ms`` (total per window, ``latency_stat``), ``network_ms``,
        ``frontend_ms``, ``rtf``, ``peak_rss_mb``, ``size_bytes``, ``status``, ``stem``,
        ``ust_micro_auprc``, ``ust_macro_auprc``.
    """
    rows: list[Row] = []
    used_acc: set[str] = set()
    runs = _resolve_device(col)
    benched = {art.key for art, _, _ in runs}
    entries: list[tuple[Artifact, str | None, dict[str, Any] | None]]
    entries = [(art, device, r) for art, device, r in sorted(runs, key=lambda x: (x[0].stem, str(x[1]), x[0].key))]
    entries += [(art, None, None) for art in sorted(col.artifacts.values(), key=lambda a: (a.stem, a.key))
                if art.key not in benched]
    for art, device, r in entries:
        row: Row = {"stem": art.stem, "model": art.name, "card": art.card, "mode": art.mode, "device": device,
               "sha256": _plain(art.sha256), "source_sha256": _plain(art.source_sha256)}
        measured = _best(col.accuracy, art.sha256, [art.stem], tflite=True)
        inherited = None if measured else _best(col.accuracy, art.source_sha256, art.names, tflite=False)
        ev = measured or inherited
        used_acc |= {e.identity for e in (measured, inherited) if e}
        row.update(accuracy=ev and ev.figures["accuracy"], accuracy_std=ev and ev.figures["accuracy_std"],
                   accuracy_inherited=inherited is not None, accuracy_from=ev and ev.name)
        if r is not None:
            lat, env = r["latency_ms"], r["environment"]
            row.update(latency_ms=lat["total"].get(latency_stat), network_ms=lat["network"].get(latency_stat),
                       frontend_ms=lat["frontend"].get(latency_stat), rtf=r.get("real_time_factor"),
                       peak_rss_mb=r["memory_mb"]["peak"], size_bytes=r["model"]["size_bytes"],
                       arch=env.get("architecture"),
                       interpreter=f"{env['interpreter']['package']} {env['interpreter']['version']}",
                       status=r["status"])
        else:
            row.update(size_bytes=art.size_bytes, status="not benchmarked")
        # the UST figures of the artifact itself, else of its float model (like accuracy)
        u = (_best(col.ust, art.sha256, [art.stem], tflite=True)
             or _best(col.ust, art.source_sha256, art.names, tflite=False))
        row.update(ust_micro_auprc=u and u.figures["micro_auprc"], ust_macro_auprc=u and u.figures["macro_auprc"])
        rows.append(row)
    for ident, ev in sorted(col.accuracy.items(), key=lambda x: (x[1].key, x[0])):
        if ident not in used_acc:
            name, _, mode = ev.key.rpartition(".") if ev.tflite and "." in ev.key else (ev.key, "", "")
            rows.append({"stem": ev.key, "model": name, "card": None, "mode": mode or "keras", "device": None,
                         "sha256": _plain(ev.sha256), "source_sha256": _plain(ev.source_sha256),
                         "accuracy": ev.figures["accuracy"], "accuracy_std": ev.figures["accuracy_std"],
                         "accuracy_inherited": False, "accuracy_from": ev.name, "status": "accuracy only"})
    return rows


def _plain(value: Hash) -> str | None:
    return None if isinstance(value, _Absent) else value


def _measured(rows: list[Row], cost_key: str) -> list[Row]:
    """Rows that may be Pareto points: an accuracy measured on the artifact itself, and a cost."""
    return [r for r in rows if r.get("accuracy") is not None and not r["accuracy_inherited"]
            and r.get(cost_key) is not None]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points among ``(cost, accuracy)`` pairs (lower cost, higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def labels(rows: list[Row]) -> list[str]:
    """Display label per row: the model name, with the artifact's short sha256 where two artifacts
    of one name, mode and device would otherwise read as the same row."""
    groups: dict[tuple[str, str, str | None], set[str]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["mode"], r.get("device")), set()).add(r.get("sha256") or r["stem"])
    return [f"{r['model']} @{(r.get('sha256') or r['stem'])[:8]}"
            if len(groups[(r["model"], r["mode"], r.get("device"))]) > 1 else r["model"] for r in rows]


def plot_pareto(rows: list[Row], cost_key: str, xlabel: str, path: Path | str, title: str, *,
                group_key: str | None = None, log_x: bool = False) -> Path:
    """Scatter measured accuracy against ``cost_key`` with each group's Pareto front; returns ``path``."""
    plt = atomic.pyplot()

    pts = _measured(rows, cost_key)
    names = dict(zip(map(id, rows), labels(rows)))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if not pts:
        ax.text(0.5, 0.5, f"no row has both an accuracy measured on its own artifact and {xlabel}:\n"
                "classify the .tflite files (sea-tf classify ... --model X.int8.tflite)\nand pass those results "
                "with the device/export JSONs\n(accuracy copied from the float model, †, is never plotted)",
                ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_axis_off()
    groups: dict[object, list[Row]] = {}
    for r in pts:
        groups.setdefault(r.get(group_key) if group_key else "all", []).append(r)
    markers = {"fp32": "o", "float16": "s", "dynamic": "D", "int8": "^", "keras": "*"}
    for (group, members), color in zip(sorted(groups.items(), key=lambda g: str(g[0])), plt.cm.tab10.colors):
        for r in members:
            ax.scatter(r[cost_key], 100 * r["accuracy"], color=color, marker=markers.get(r["mode"], "o"), s=50, zorder=3)
            ax.annotate(f"{names[id(r)]} [{r['mode']}]", (r[cost_key], 100 * r["accuracy"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = [members[i] for i in pareto_front([(m[cost_key], m["accuracy"]) for m in members])]
        ax.step([m[cost_key] for m in front], [100 * m["accuracy"] for m in front], where="post", color=color,
                alpha=0.6, label=f"{group} Pareto front" if group_key else "Pareto front")
    if pts:
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy measured on the artifact (%)")
        if log_x:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return atomic.save_figure(fig, path)


def markdown_table(rows: list[Row], *, latency_stat: str) -> str:
    """The report's table (one row per artifact and device)."""
    def num(value: float | None, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    lines = [f"| model | mode | device | accuracy (%) | latency {latency_stat} (ms/window) | network (ms) | "
             "RTF | peak RSS (MiB) | size (KiB) | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r, label in zip(rows, labels(rows)):
        acc = "—" if r.get("accuracy") is None else (
            f"{100 * r['accuracy']:.1f}" + (f" ± {100 * r['accuracy_std']:.1f}" if r.get("accuracy_std") is not None else "")
            + (" †" if r["accuracy_inherited"] else ""))
        size = None if r.get("size_bytes") is None else r["size_bytes"] / 1024
        lines.append(f"| {label} | {r['mode']} | {r.get('device') or '—'} | {acc} | {num(r.get('latency_ms'), '.3f')} "
                     f"| {num(r.get('network_ms'), '.3f')} | {num(r.get('rtf'), '.3f')} | {num(r.get('peak_rss_mb'), '.1f')} "
                     f"| {num(size, '.1f')} | {r['status']} |")
    return "\n".join(lines)


def ust_markdown(col: Collection, rows: list[Row]) -> str:
    """The SONYC-UST table: one row per evaluated model or artifact, with its size where one is known."""
    sizes: dict[str, int] = {}
    for r in rows:
        if r.get("size_bytes") is not None:
            for key in (r.get("sha256"), r["stem"], r["model"]):
                if key:
                    sizes.setdefault(key, r["size_bytes"])
    lines = ["| model | micro AUPRC | macro AUPRC | micro F1 | validate files | size (KiB) |",
             "|---|---|---|---|---|---|"]
    for ev in sorted(col.ust.values(), key=lambda e: (e.key, str(e.sha256))):
        u = ev.figures
        by_hash = sizes.get(ev.sha256) if isinstance(ev.sha256, str) else None
        size = (by_hash or sizes.get(ev.key)) if ev.tflite else None   # a float model has no artifact size
        lines.append(f"| {ev.key} | {u['micro_auprc']:.3f} | {u['macro_auprc']:.3f} | "
                     f"{'—' if u['micro_f1'] is None else format(u['micro_f1'], '.3f')} | {u['n_files'] or '—'} | "
                     f"{'—' if size is None else format(size / 1024, '.1f')} |")
    return "\n".join(lines)


def build(cfg: Mapping[str, Any], results: Sequence[Path | str], *,
          aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``sea-tf report RESULTS...``: one report of ``results`` in ``cfg["out"]`` (:func:`write_report`).

    Parameters
    ----------
    cfg : dict
        The resolved ``report`` config (``configs/report.yaml``: ``out``, ``title``,
        ``latency_stat``, ``html``; ``sea_tf.config.load("report", out="runs/report")``).
    results : list of str or Path
        Result files or directories (device results, export sidecars or reports, classify results).
    aliases : dict, optional
        The legacy ``--alias``: see :func:`collect`.

    Returns
    -------
    dict
        What :func:`write_report` returns; the resolved config is written as ``OUT/report.config.yaml``.
    """
    out = Path(cfg["out"])
    result = write_report(results, out, title=cfg["title"], latency_stat=cfg["latency_stat"], html=cfg["html"],
                          aliases=aliases)
    write_resolved(cfg, out, "report")
    return result


def write_report(inputs: Sequence[Path | str] = (), out_dir: Path | str = "runs/report", *,
                 objects: Iterable[object] = (), title: str, latency_stat: str, html: bool,
                 md_name: str = "report.md", prefix: str = "", aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Collect, tabulate and plot; writes ``report.md``, ``rows.json``, two Pareto PNGs and, with
    ``html``, ``report.html`` (the browser page of :mod:`sea_tf.report_html`).

    Parameters
    ----------
    inputs : list of str or Path
        Result files or directories.
    out_dir : str or Path
    objects : list of dict
        Already-loaded results (e.g. the demo's ``ctx.results``).
    title : str
    latency_stat : {"mean", "p50", "p90", "p99"}
    html : bool
        Also write the rows as one page to open in a browser, named as the markdown with ``.html``.
    md_name : str
        File name of the markdown (the demo uses another name beside its own ``report.md``).
    prefix : str
        Prefix of the PNG and ``rows.json`` file names.
    aliases : dict, optional
        See :func:`collect`.

    Returns
    -------
    dict
        ``markdown`` (path), ``rows_json`` (path), ``pngs`` (paths), ``html`` (path or None), ``rows``,
        ``ignored``.
    """
    col = collect(inputs, objects=objects, aliases=aliases)
    rows = build_rows(col, latency_stat=latency_stat)
    if not rows and not col.ust:
        raise DataError(f"nothing to report in {', '.join(map(str, inputs)) or 'the given results'}: no device, export "
                        "or classification JSON recognised; pass the files those stages wrote")
    out_dir = Path(out_dir)
    png_latency = plot_pareto(rows, "latency_ms", f"latency per 1-s window, {latency_stat} (ms)",
                              out_dir / f"{prefix}pareto_accuracy_latency.png", "accuracy vs latency", group_key="device", log_x=True)
    png_size = plot_pareto(_one_per_artifact(rows), "size_bytes", "model file size (bytes)",
                           out_dir / f"{prefix}pareto_accuracy_size.png", "accuracy vs model size", log_x=True)
    md = [f"# {title}", "",
          "One row per artifact and device (two artifacts of one name are told apart by their sha256). Latency is "
          "per 1-s window (front end + network + classifier); RTF = compute time per second of audio at the bench's "
          "hop. † accuracy of the float model the artifact was converted from, not measured on the artifact: "
          "shown, never a Pareto point.", "", markdown_table(rows, latency_stat=latency_stat), "",
          f"![accuracy vs latency]({png_latency.name})", "", f"![accuracy vs size]({png_size.name})", ""]
    names = dict(zip(map(id, rows), labels(rows)))
    # latency is compared per device, as on the plot: one board's milliseconds do not beat another's
    fronts = [(f"latency on {device}", [r for r in _measured(rows, "latency_ms") if r["device"] == device], "latency_ms")
              for device in sorted({r["device"] for r in _measured(rows, "latency_ms")}, key=str)]
    fronts.append(("size", _measured(_one_per_artifact(rows), "size_bytes"), "size_bytes"))
    for label, pts, key in fronts:
        front = [pts[i] for i in pareto_front([(r[key], r["accuracy"]) for r in pts])]
        if front:
            md.append(f"Pareto front (accuracy vs {label}): " + ", ".join(f"{names[id(r)]} [{r['mode']}]" for r in front))
    inherited = [r for r in rows if r["accuracy_inherited"]]
    if inherited:
        md.append(f"Not on the Pareto plots: {len(inherited)} row(s) with † accuracy; classify the `.tflite` "
                  "files themselves to place them.")
    if col.ust:
        md += ["", "## SONYC-UST (coarse tagging, validate split; DCASE 2019 Task 5 metrics, docs/PROTOCOL.md §4.3)", "",
               ust_markdown(col, rows)]
    if col.other_datasets:
        shown = next(iter(col.accuracy.values())).figures["dataset"]
        md += ["", f"Accuracy is on {shown}; also given, not shown: " + ", ".join(
            f"{name} ({n} result(s))" for name, n in col.other_datasets.items())
            + " — report each dataset's classify results on their own"]
    if col.ignored:
        md += ["", "Ignored (nothing recognised): " + ", ".join(f"`{p}`" for p in col.ignored)]
    md_path = out_dir / md_name
    atomic.write_text(md_path, "\n".join(md) + "\n")
    rows_path = out_dir / f"{prefix}rows.json"
    atomic.write_json(rows_path, rows)
    page = (write_tune_page(page_data(rows, latency_stat=latency_stat), out_dir / Path(md_name).with_suffix(".html"),
                            title=title) if html else None)
    return {"markdown": md_path, "rows_json": rows_path, "pngs": [png_latency, png_size], "html": page, "rows": rows,
            "ignored": col.ignored}


def page_data(rows: list[Row], *, latency_stat: str) -> dict[str, Any]:
    """The report's rows as the browser page's data (a ``sea-tf-tune/1`` dict, :mod:`sea_tf.report_html`).

    One cell per row; a board per device label (rows without a device run: ``"no device run"``);
    the Pareto fronts per board as on the PNGs (accuracy measured on the artifact itself; a float
    model's accuracy, †, is kept as ``accuracy_of_float_model`` and never plotted); no budgets, so no choice.
    """
    cells: list[dict[str, Any]] = []
    boards: dict[str, dict[str, Any]] = {}
    for r, name in zip(rows, labels(rows)):
        board = r.get("device") or "no device run"
        boards.setdefault(board, {"label": board, "status": "ok" if r.get("device") else None, "error": None, "facts": {
            k: r[k] for k in ("arch", "interpreter") if r.get(k)}})
        inherited = bool(r.get("accuracy_inherited"))
        cells.append({
            "id": f"{name} [{r['mode']}] @{board}", "status": "done", "error": None, "board": board,
            "artifact": r["stem"], "student": {"preset": name}, "export": {"mode": r["mode"]},
            "accuracy": None if inherited else r.get("accuracy"), "accuracy_std": r.get("accuracy_std"),
            "accuracy_of_float_model": r.get("accuracy") if inherited else None, "accuracy_from": r.get("accuracy_from"),
            "latency_ms": {latency_stat: r["latency_ms"]} if r.get("latency_ms") is not None else None,
            "network_ms": r.get("network_ms"), "frontend_ms": r.get("frontend_ms"), "rtf": r.get("rtf"),
            "peak_rss_mb": r.get("peak_rss_mb"), "size_bytes": r.get("size_bytes"), "sha256": r.get("sha256"),
            "source_sha256": r.get("source_sha256"), "note": None if r.get("status") == "complete" else r.get("status")})
    pareto: dict[str, dict[str, list[str]]] = {}
    for board in boards:
        mine = [c for c in cells if c["board"] == board and c["accuracy"] is not None]
        costs = {"latency": [(c["latency_ms"] or {}).get(latency_stat) for c in mine],
                 "size": [c["size_bytes"] for c in mine]}
        pareto[board] = {}
        for axis, values in costs.items():
            pts = [(c["id"], float(v), float(c["accuracy"])) for c, v in zip(mine, values) if v is not None]
            pareto[board][axis] = [pts[i][0] for i in pareto_front([(cost, acc) for _, cost, acc in pts])]
    return {"schema": PAGE_SCHEMA, "created": None, "latency_stat": latency_stat,
            "task": {"label": "accuracy measured on each artifact (classification results joined by sha256)"},
            "budgets": {}, "reference_accuracy": None, "boards": boards, "cells": cells, "pareto": pareto, "choice": {}}


def _one_per_artifact(rows: list[Row]) -> list[Row]:
    """The first row of each artifact (size does not depend on the device)."""
    seen: set[str] = set()
    out: list[Row] = []
    for r in rows:
        key = r.get("sha256") or r["stem"]
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _stem(path: Path | str) -> str:
    name = Path(str(path)).name
    return name[: -len(".tflite")] if name.endswith(".tflite") else Path(name).stem
