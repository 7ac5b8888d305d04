"""Demo step ``models``: the model zoo at a glance, and a few demo clips embedded like ``sea-tf embed``.

Embeds with the authors' published SEA-64 student when it is in the weights cache (``sea-tf models
import edgel3_sea_ust_audio_emb_64.h5`` or ``sea-tf models fetch edgel3/sea-64``), else with the
seeded, untrained ``sea-64`` preset, and says which in the report. (Parity of the published model
with edgel3's reference embeddings is a test, ``tests/test_embed.py``: its fixtures are not part of
what a user installs.) Reports parameters and MACs per 1-s window (front end / network) of the
teacher and every student preset. Sets ``ctx.artifacts["embed_model"]`` to the model spec it used.
Takes about 10–20 s on 2 cores.
"""
import time
from typing import Any

import numpy as np

from sea_tf.config import write_resolved
from sea_tf.demo import DemoContext, StepReport

N_CLIPS = 24
ZOO = ("l3-mel256-512", "l3-mel128-512", "edgel3-sparse", "sea-512", "sea-256", "sea-128", "sea-64")
PUBLISHED = "edgel3/sea-64"
UNTRAINED = "sea-64"
#: How a user puts the published student into the weights cache (said in the report when it is absent).
IMPORT_HINT = ("`sea-tf models import edgel3_sea_ust_audio_emb_64.h5` (a copy of the published file) or "
               "`sea-tf models fetch edgel3/sea-64`")


def _zoo_table() -> list[dict[str, Any]]:
    """Sample rate, embedding size, parameters and MACs per 1-s window of every model of :data:`ZOO`."""
    from sea_tf.models import build_preset
    rows = []
    for name in ZOO:
        # Only the architecture's size is read here, so the seeded presets are built directly
        # (load_model would warn that their weights are untrained, which does not matter for a count).
        card = build_preset(name).card
        rows.append({"model": name, "sample_rate": card["sample_rate"], "embedding_size": card["embedding_size"],
                     "params": card["params"], "macs_frontend": card["macs"]["frontend"],
                     "macs_network": card["macs"]["network"], "macs_total": card["macs"]["total"]})
    return rows


def run(ctx: DemoContext) -> StepReport:
    from sea_tf.audio import find_audio_files
    from sea_tf.embed import embed_files
    from sea_tf.models import load_model
    from sea_tf.weights import is_cached

    published = is_cached(PUBLISHED)
    spec = PUBLISHED if published else UNTRAINED
    model = load_model(spec)

    data_dir = ctx.artifacts.get("data_dir", ctx.data_dir)
    clips = find_audio_files(data_dir / "audio", recursive=True)[:N_CLIPS] if (data_dir / "audio").is_dir() else []
    out = ctx.out_dir / "embeddings"
    start = time.perf_counter()
    summary = embed_files(clips, model=model, output_dir=out, overwrite=True)
    embed_s = time.perf_counter() - start
    windows = sum(np.load(p)["embedding"].shape[0] for p in summary.processed)
    write_resolved({"model": spec, "output_dir": str(out), "suffix": None, "hop_size": 0.1, "center": True,
                    "batch_size": 32, "overwrite": True, "recursive": True, "model_name": model.name,
                    "weights": model.card["weights"]["source"]}, out, "embed")
    ctx.artifacts["embed_model"] = spec

    zoo = _zoo_table()
    figures = {
        "embed_model": spec, "embed_model_name": model.name, "weights": model.card["weights"]["source"],
        "published_in_weights_cache": published, "clips": len(clips), "processed": len(summary.processed),
        "failed": len(summary.failed), "windows": int(windows), "embed_s": round(embed_s, 2),
        "windows_per_s": round(windows / embed_s, 1) if embed_s > 0 else None,
        "output_dir": str(out), "zoo": zoo,
    }
    return StepReport(figures=figures, markdown=_markdown(figures))


def _markdown(f: dict[str, Any]) -> str:
    source = ("the authors' published SEA-64 student (`edgel3/sea-64`, from the weights cache)"
              if f["published_in_weights_cache"] else "the seeded, **untrained** `sea-64` preset")
    lines = [f"Embedded {f['processed']} of {f['clips']} demo clips ({f['windows']} windows of 1 s, hop 0.1 s, "
             f"centred) with {source} (`{f['embed_model_name']}`) in {f['embed_s']} s "
             f"({f['windows_per_s']} windows/s) into `{f['output_dir']}`; {f['failed']} failed."]
    if not f["published_in_weights_cache"]:
        lines.append(f"The published SEA-64 student is not in the weights cache, so these embeddings are random "
                     f"features; put it there with {IMPORT_HINT} and re-run the demo.")
    lines += ["", "| model | sr (Hz) | D | params | MACs front end | MACs network | MACs total |",
              "|---|---|---|---|---|---|---|"]
    for row in f["zoo"]:
        lines.append(f"| {row['model']} | {row['sample_rate']} | {row['embedding_size']} | {row['params']:,} | "
                     f"{row['macs_frontend'] / 1e6:.1f} M | {row['macs_network'] / 1e6:.1f} M | "
                     f"{row['macs_total'] / 1e6:.1f} M |")
    lines.append("")
    lines.append("MACs per 1-s window; the front end computes the DFT with an rFFT (the kapre matrix form costs "
                 "52.5 M MACs for SEA-64).")
    return "\n".join(lines)
