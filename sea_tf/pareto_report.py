"""``sea-tf report``: merge export, classification and device JSONs into one accuracy-vs-cost report.

Inputs are recognised by their content, so any mix of files (or directories searched for
``*.json``) can be given:

- device results of ``python -m device.bench`` / ``sea-tf device run`` (``"schema":
  "sea-tf/device-bench/1"``): latency, memory, size, per (model, mode, device);
- export sidecars ``X.json`` (``sha256``, ``mode``, ``frontend_in_model``, ``model_card``): size;
- classification results of ``sea-tf classify`` (``results.json`` with ``accuracy_mean`` or
  ``comparison.json`` with ``models: {name: summary}``), also when nested in a demo ``report.json``;
- SONYC-UST results of ``sea-tf classify ust`` (``results.json`` / ``comparison.json`` with
  ``micro_auprc``): a table of their own (micro/macro AUPRC, micro F1), and the rows' ``ust_*`` fields.

Rows are keyed by the artifact stem ``<name>.<mode>`` (what ``sea-tf classify`` calls a ``.tflite``
model); a row without an accuracy measured on its own artifact takes its float model's accuracy
(same model name), marked "†". The Pareto front is the set of rows no other row beats on both
accuracy (higher) and cost (lower).
"""
import json
from pathlib import Path

from sea_tf import atomic
from sea_tf.errors import DataError

DEVICE_SCHEMA = "sea-tf/device-bench/1"


def find_json(inputs):
    """JSON files among ``inputs`` (files, or directories searched recursively), in order.

    In a directory of ``sea-tf device run`` results (``OUT/<user@host>/<run-id>/``) only each
    host's latest run is read: the older runs are still there, and merging them would report stale
    numbers beside new ones. Name a run directory (or its files) to read that run instead.
    """
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            runs = {}
            files += sorted(p for p in path.rglob("*.json") if not p.name.startswith(".") and _in_latest_run(p, path, runs))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such results file or directory; pass the JSONs written by "
                            "`sea-tf export`, `sea-tf classify` and `sea-tf device run`")
    return files


def _in_latest_run(path, root, runs):
    """False for a file of ``root`` that belongs to an older device run than its host's latest, or
    that lies loose beside run directories (the layout before run ids). ``runs``: a cache, folder ->
    names of the run directories in it."""
    from sea_tf.remote import RUN_ID_RE

    parts = path.relative_to(root).parts[:-1]
    for depth in range(len(parts) + 1):
        folder = root.joinpath(*parts[:depth])
        if folder not in runs:
            runs[folder] = [p.name for p in folder.iterdir() if p.is_dir() and RUN_ID_RE.fullmatch(p.name)]
        if runs[folder] and (depth == len(parts) or parts[depth] != max(runs[folder])):
            return False
    return True


class Collection:
    """Everything recognised in the inputs.

    Attributes
    ----------
    device : dict
        ``(stem, device) -> device-bench result``.
    export : dict
        ``stem -> {"name", "mode", "size_bytes"}``.
    accuracy : dict
        ``key -> {"accuracy", "accuracy_std", "dataset", "n_folds"}``; key is a ``.tflite``
        stem or a model name.
    ust : dict
        ``key -> {"micro_auprc", "macro_auprc", "micro_f1", "n_files"}`` (SONYC-UST, validate split),
        keyed like ``accuracy``.
    ignored : list of str
        Input files that held nothing recognisable.
    """

    def __init__(self, aliases=None):
        self.device, self.export, self.accuracy, self.ignored = {}, {}, {}, []
        self.ust = {}
        self.aliases = dict(aliases or {})

    def add_file(self, path):
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not readable JSON ({exc}); pass the result files themselves") from exc
        if not self.add(obj, source=path):
            self.ignored.append(str(path))

    def add(self, obj, source=None, hint=None):
        """Recognise ``obj`` (and what is nested in it); returns how many records were taken."""
        if isinstance(obj, list):
            return sum(self.add(o, None, hint) for o in obj)
        if not isinstance(obj, dict):
            return 0
        if obj.get("schema") == DEVICE_SCHEMA:
            stem = _stem(obj["model"]["path"])
            self.device[(stem, obj.get("device") or obj["environment"].get("hostname"))] = obj
            self.export.setdefault(stem, {"name": obj["model"]["name"], "mode": obj["model"]["mode"],
                                          "size_bytes": obj["model"]["size_bytes"]})
            return 1
        if {"sha256", "mode", "frontend_in_model"} <= obj.keys():
            # a sidecar file names its .tflite by its own name; a nested entry must say "path"
            tflite = obj.get("path") or obj.get("tflite") or (Path(source).with_suffix(".tflite") if source else None)
            if tflite is None:
                return 0
            tflite = Path(tflite)
            if obj.get("classes") or (obj.get("model_card") or {}).get("kind") == "classifier":
                return 1  # a classifier is part of every pipeline's cost, not a row of its own
            size = obj.get("size_bytes") or (tflite.stat().st_size if tflite.exists() else None)
            self.export[_stem(tflite)] = {"name": (obj.get("model_card") or {}).get("name") or _stem(tflite).rsplit(".", 1)[0],
                                          "mode": obj["mode"], "size_bytes": size}
            return 1
        if isinstance(obj.get("models"), dict) and any(isinstance(v, dict) and "accuracy_mean" in v
                                                       for v in obj["models"].values()):
            return sum(self._add_accuracy(name, s, obj) for name, s in obj["models"].items() if isinstance(s, dict))
        if "accuracy_mean" in obj and (obj.get("model") or hint):
            return self._add_accuracy(obj.get("model") or hint, obj, {})
        if isinstance(obj.get("models"), dict) and any(isinstance(v, dict) and "micro_auprc" in v
                                                       for v in obj["models"].values()):
            return sum(self._add_ust(name, s) for name, s in obj["models"].items() if isinstance(s, dict))
        if "micro_auprc" in obj and (obj.get("model") or hint):
            return self._add_ust(obj.get("model") or hint, obj)
        return sum(self.add(v, None, hint=k) for k, v in obj.items() if isinstance(v, (dict, list)))

    def _add_accuracy(self, name, summary, parent):
        if "accuracy_mean" not in summary:
            return 0
        spec = str(summary.get("spec") or "")
        key = _stem(spec) if spec.endswith(".tflite") else self.aliases.get(name, name)
        self.accuracy[key] = {"accuracy": float(summary["accuracy_mean"]),
                              "accuracy_std": summary.get("accuracy_std"),
                              "dataset": parent.get("dataset") or summary.get("dataset"),
                              "n_folds": parent.get("n_folds") or len(summary.get("per_fold") or {}) or None}
        return 1


    def _add_ust(self, name, summary):
        if "micro_auprc" not in summary:
            return 0
        spec = str(summary.get("spec") or "")
        key = _stem(spec) if spec.endswith(".tflite") else self.aliases.get(name, name)
        self.ust[key] = {"micro_auprc": float(summary["micro_auprc"]), "macro_auprc": float(summary["macro_auprc"]),
                         "micro_f1": summary.get("micro_f1"), "n_files": summary.get("n_validate_scored")}
        return 1


def collect(inputs, objects=(), aliases=None):
    """A :class:`Collection` from result files/directories ``inputs`` and in-memory ``objects``.

    ``aliases`` maps a classification result's model name to the model-card name its artifacts
    carry (e.g. ``{"student": "sea-64"}`` when ``sea-tf classify`` called the student "student").
    """
    col = Collection(aliases)
    for path in find_json(inputs):
        col.add_file(path)
    for obj in objects:
        col.add(obj)
    return col


def build_rows(col, latency_stat="p50"):
    """One row per (model, mode, device), plus rows for artifacts or models without a device run.

    Returns
    -------
    list of dict
        ``model``, ``mode``, ``device``, ``accuracy`` (fraction or None), ``accuracy_std``,
        ``accuracy_inherited`` (bool), ``latency_ms`` (total per window, ``latency_stat``),
        ``network_ms``, ``frontend_ms``, ``rtf``, ``peak_rss_mb``, ``size_bytes``, ``status``, ``stem``.
    """
    rows = []
    benched = set()
    for (stem, device), r in sorted(col.device.items()):
        lat = r["latency_ms"]
        acc, inherited = _accuracy(col, stem, r["model"]["name"])
        rows.append({"stem": stem, "model": r["model"]["name"], "mode": r["model"]["mode"], "device": device,
                     **acc, "accuracy_inherited": inherited,
                     "latency_ms": lat["total"].get(latency_stat), "network_ms": lat["network"].get(latency_stat),
                     "frontend_ms": lat["frontend"].get(latency_stat), "rtf": r.get("real_time_factor"),
                     "peak_rss_mb": r["memory_mb"]["peak"], "size_bytes": r["model"]["size_bytes"],
                     "arch": r["environment"].get("architecture"),
                     "interpreter": f"{r['environment']['interpreter']['package']} {r['environment']['interpreter']['version']}",
                     "status": r["status"]})
        benched.add(stem)
    for stem, e in sorted(col.export.items()):
        if stem not in benched:
            acc, inherited = _accuracy(col, stem, e["name"])
            rows.append({"stem": stem, "model": e["name"], "mode": e["mode"], "device": None, **acc,
                         "accuracy_inherited": inherited, "size_bytes": e["size_bytes"], "status": "not benchmarked"})
    for r in rows:
        # the UST figures of the artifact itself, else of its float model (like accuracy)
        u = col.ust.get(r["stem"]) or col.ust.get(r["model"])
        r.update(ust_micro_auprc=u and u["micro_auprc"], ust_macro_auprc=u and u["macro_auprc"])
    used = {r["stem"] for r in rows} | {r["model"] for r in rows}
    for key, a in sorted(col.accuracy.items()):
        if key not in used:
            name, _, mode = key.partition(".")
            rows.append({"stem": key, "model": name if mode else key, "mode": mode or "keras", "device": None,
                         "accuracy": a["accuracy"], "accuracy_std": a["accuracy_std"], "accuracy_inherited": False,
                         "status": "accuracy only"})
    return rows


def _accuracy(col, stem, name):
    if stem in col.accuracy:
        a = col.accuracy[stem]
        return {"accuracy": a["accuracy"], "accuracy_std": a["accuracy_std"]}, False
    if name in col.accuracy:
        a = col.accuracy[name]
        return {"accuracy": a["accuracy"], "accuracy_std": a["accuracy_std"]}, True
    return {"accuracy": None, "accuracy_std": None}, False


def pareto_front(points):
    """Indices of the non-dominated points among ``(cost, accuracy)`` pairs (lower cost, higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(rows, cost_key, xlabel, path, title, group_key=None, log_x=False):
    """Scatter accuracy against ``cost_key`` with each group's Pareto front; returns ``path`` or None."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("accuracy") is not None and r.get(cost_key) is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if not pts:
        ax.text(0.5, 0.5, f"no row has both an accuracy and {xlabel}:\npass classification results "
                "(sea-tf classify results.json)\nand device/export JSONs", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    groups = {}
    for r in pts:
        groups.setdefault(r.get(group_key) if group_key else "all", []).append(r)
    markers = {"fp32": "o", "float16": "s", "dynamic": "D", "int8": "^", "keras": "*"}
    for (group, members), color in zip(sorted(groups.items(), key=lambda g: str(g[0])), plt.cm.tab10.colors):
        for r in members:
            ax.scatter(r[cost_key], 100 * r["accuracy"], color=color, marker=markers.get(r["mode"], "o"),
                       facecolors="none" if r["accuracy_inherited"] else color, s=50, zorder=3)
            ax.annotate(f"{r['model']} [{r['mode']}]", (r[cost_key], 100 * r["accuracy"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = [members[i] for i in pareto_front([(m[cost_key], m["accuracy"]) for m in members])]
        ax.step([m[cost_key] for m in front], [100 * m["accuracy"] for m in front], where="post", color=color,
                alpha=0.6, label=f"{group} Pareto front" if group_key else "Pareto front")
    if pts:
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        if log_x:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title + ("  (hollow: accuracy of the float model)" if any(r["accuracy_inherited"] for r in pts) else ""),
                 fontsize=9)
    fig.tight_layout()
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def markdown_table(rows, latency_stat="p50"):
    """The report's table (one row per model, mode and device)."""
    def num(value, fmt):
        return "—" if value is None else format(value, fmt)

    lines = [f"| model | mode | device | accuracy (%) | latency {latency_stat} (ms/window) | network (ms) | "
             "RTF | peak RSS (MiB) | size (KiB) | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = "—" if r.get("accuracy") is None else (
            f"{100 * r['accuracy']:.1f}" + (f" ± {100 * r['accuracy_std']:.1f}" if r.get("accuracy_std") is not None else "")
            + (" †" if r["accuracy_inherited"] else ""))
        size = None if r.get("size_bytes") is None else r["size_bytes"] / 1024
        lines.append(f"| {r['model']} | {r['mode']} | {r.get('device') or '—'} | {acc} | {num(r.get('latency_ms'), '.3f')} "
                     f"| {num(r.get('network_ms'), '.3f')} | {num(r.get('rtf'), '.3f')} | {num(r.get('peak_rss_mb'), '.1f')} "
                     f"| {num(size, '.1f')} | {r['status']} |")
    return "\n".join(lines)


def ust_markdown(col, rows):
    """The SONYC-UST table: one row per evaluated model or artifact, with its size where one is known."""
    sizes = {}
    for r in rows:
        if r.get("size_bytes") is not None:
            sizes.setdefault(r["stem"], r["size_bytes"])
            sizes.setdefault(r["model"], r["size_bytes"])
    lines = ["| model | micro AUPRC | macro AUPRC | micro F1 | validate files | size (KiB) |",
             "|---|---|---|---|---|---|"]
    for key, u in sorted(col.ust.items()):
        size = sizes.get(key)
        lines.append(f"| {key} | {u['micro_auprc']:.3f} | {u['macro_auprc']:.3f} | "
                     f"{'—' if u['micro_f1'] is None else format(u['micro_f1'], '.3f')} | {u['n_files'] or '—'} | "
                     f"{'—' if size is None else format(size / 1024, '.1f')} |")
    return "\n".join(lines)


def write_report(inputs=(), out_dir="runs/report", objects=(), title="sea-tf: accuracy vs cost", latency_stat="p50",
                 md_name="report.md", prefix="", aliases=None):
    """Collect, tabulate and plot; writes ``report.md``, ``rows.json`` and two Pareto PNGs.

    Parameters
    ----------
    inputs : list of str or Path
        Result files or directories.
    out_dir : str or Path
    objects : list of dict
        Already-loaded results (e.g. the demo's ``ctx.results``).
    title : str
    latency_stat : {"mean", "p50", "p90", "p99"}
    md_name : str
        File name of the markdown (the demo uses another name beside its own ``report.md``).
    prefix : str
        Prefix of the PNG and ``rows.json`` file names.
    aliases : dict, optional
        See :func:`collect`.

    Returns
    -------
    dict
        ``markdown`` (path), ``rows_json`` (path), ``pngs`` (paths), ``rows``, ``ignored``.
    """
    col = collect(inputs, objects, aliases)
    rows = build_rows(col, latency_stat)
    if not rows and not col.ust:
        raise DataError(f"nothing to report in {', '.join(map(str, inputs)) or 'the given results'}: no device, export "
                        "or classification JSON recognised; pass the files those stages wrote")
    out_dir = Path(out_dir)
    png_latency = plot_pareto(rows, "latency_ms", f"latency per 1-s window, {latency_stat} (ms)",
                              out_dir / f"{prefix}pareto_accuracy_latency.png", "accuracy vs latency", group_key="device", log_x=True)
    png_size = plot_pareto([r for r in _one_per_artifact(rows)], "size_bytes", "model file size (bytes)",
                           out_dir / f"{prefix}pareto_accuracy_size.png", "accuracy vs model size", log_x=True)
    md = [f"# {title}", "",
          "One row per (model, mode, device). Latency is per 1-s window (front end + network + classifier); "
          "RTF = compute time per second of audio at the bench's hop. † accuracy of the float model, not "
          "measured on this artifact.", "", markdown_table(rows, latency_stat), "",
          f"![accuracy vs latency]({png_latency.name})", "", f"![accuracy vs size]({png_size.name})", ""]
    for key, label in (("latency_ms", "latency"), ("size_bytes", "size")):
        pts = [r for r in (rows if key == "latency_ms" else _one_per_artifact(rows))
               if r.get("accuracy") is not None and r.get(key) is not None]
        front = [pts[i] for i in pareto_front([(r[key], r["accuracy"]) for r in pts])]
        if front:
            md.append(f"Pareto front (accuracy vs {label}): " + ", ".join(
                f"{r['model']} [{r['mode']}]" + (f" on {r['device']}" if key == "latency_ms" and r.get("device") else "")
                for r in front))
    if col.ust:
        md += ["", "## SONYC-UST (coarse tagging, validate split; DCASE 2019 Task 5 metrics, docs/PROTOCOL.md §4.3)", "",
               ust_markdown(col, rows)]
    if col.ignored:
        md += ["", "Ignored (nothing recognised): " + ", ".join(f"`{p}`" for p in col.ignored)]
    md_path = out_dir / md_name
    atomic.write_text(md_path, "\n".join(md) + "\n")
    rows_path = out_dir / f"{prefix}rows.json"
    atomic.write_json(rows_path, rows)
    return {"markdown": md_path, "rows_json": rows_path, "pngs": [png_latency, png_size], "rows": rows,
            "ignored": col.ignored}


def _one_per_artifact(rows):
    seen, out = set(), []
    for r in rows:
        if r["stem"] not in seen:
            seen.add(r["stem"])
            out.append(r)
    return out


def _stem(path):
    name = Path(str(path)).name
    return name[: -len(".tflite")] if name.endswith(".tflite") else Path(name).stem
