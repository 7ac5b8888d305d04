"""Demo step ``models``: the model zoo at a glance, and a few demo clips embedded like ``sea-tf embed``.

Uses the authors' published SEA-64 student when ``../shared`` has it (and checks it against the
reference embeddings of ``chirp_8k.wav``), else the seeded ``sea-64`` preset. Reports parameters
and MACs per 1-s window (front end / network) of the teacher and every student preset.
Sets ``ctx.artifacts["embed_model"]`` to the model spec it used. Takes about 10–20 s on 2 cores.
"""
import time

import numpy as np

from sea_tf.config import write_resolved
from sea_tf.demo import StepReport

N_CLIPS = 24
ZOO = ("l3-mel256-512", "l3-mel128-512", "edgel3-sparse", "sea-512", "sea-256", "sea-128", "sea-64")


def _published(ctx):
    if ctx.shared_dir is None:
        return None
    path = ctx.shared_dir / "models" / "edgel3_sea_ust_audio_emb_64.h5"
    return path if path.is_file() else None


def _parity(ctx, model):
    """Relative max error against the reference embeddings of chirp_8k.wav (None without fixtures)."""
    from sea_tf.audio import load_audio
    from sea_tf.embed import get_embedding
    wav = ctx.shared_dir / "fixtures" / "chirp_8k.wav"
    ref = ctx.shared_dir / "fixtures" / "sea64_reference_chirp8k.npz"
    if not (wav.is_file() and ref.is_file()):
        return None
    ref = np.load(ref)
    audio, sr = load_audio(wav)
    errors = []
    for center in (True, False):
        emb, _ = get_embedding(audio, sr, model=model, center=center)
        want = ref[f"emb_center_{center}"]
        errors.append(float(np.abs(emb - want).max() / np.abs(want).max()))
    return max(errors)


def _zoo_table():
    from sea_tf.models import load_model
    rows = []
    for name in ZOO:
        card = load_model(name).card
        rows.append({"model": name, "sample_rate": card["sample_rate"], "embedding_size": card["embedding_size"],
                     "params": card["params"], "macs_frontend": card["macs"]["frontend"],
                     "macs_network": card["macs"]["network"], "macs_total": card["macs"]["total"]})
    return rows


def run(ctx):
    from sea_tf.audio import find_audio_files
    from sea_tf.embed import embed_files
    from sea_tf.models import load_model

    published = _published(ctx)
    spec = str(published) if published else "sea-64"
    model = load_model(spec)
    parity = _parity(ctx, model) if published else None

    data_dir = ctx.artifacts.get("data_dir", ctx.data_dir)
    clips = find_audio_files(data_dir / "audio", recursive=True)[:N_CLIPS] if (data_dir / "audio").is_dir() else []
    out = ctx.out_dir / "embeddings"
    start = time.perf_counter()
    summary = embed_files(clips, model=model, output_dir=out, overwrite=True)
    embed_s = time.perf_counter() - start
    windows = sum(np.load(p)["embedding"].shape[0] for p in summary.processed)
    write_resolved({"model": spec, "output_dir": str(out), "suffix": None, "hop_size": 0.1, "center": True,
                    "batch_size": 32, "overwrite": True, "recursive": True, "model_name": model.name}, out, "embed")
    ctx.artifacts["embed_model"] = spec

    zoo = _zoo_table()
    figures = {
        "embed_model": spec, "embed_model_name": model.name, "weights": model.card["weights"]["source"],
        "published_parity_rel_err": parity, "clips": len(clips), "processed": len(summary.processed),
        "failed": len(summary.failed), "windows": int(windows), "embed_s": round(embed_s, 2),
        "windows_per_s": round(windows / embed_s, 1) if embed_s > 0 else None,
        "output_dir": str(out), "zoo": zoo,
    }
    return StepReport(figures=figures, markdown=_markdown(figures))


def _markdown(f):
    source = ("the authors' published SEA-64 student" if f["weights"] == "published"
              else "the seeded, untrained `sea-64` preset (../shared absent)")
    lines = [f"Embedded {f['processed']} of {f['clips']} demo clips ({f['windows']} windows of 1 s, hop 0.1 s, "
             f"centred) with {source} (`{f['embed_model_name']}`) in {f['embed_s']} s "
             f"({f['windows_per_s']} windows/s) into `{f['output_dir']}`; {f['failed']} failed."]
    if f["published_parity_rel_err"] is not None:
        lines.append(f"Parity with the reference embeddings of `chirp_8k.wav`: relative max error "
                     f"{f['published_parity_rel_err']:.2e} (must be ≤ 1e-4).")
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
