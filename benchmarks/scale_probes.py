"""Measurements ``bench_scale.py`` runs in their own process, beside the CLI stages it drives.

Each probe times one piece of work with imports and model loading excluded, so that a rate can
be compared with a stage's own figure (a stage's wall time also holds TensorFlow's start-up):

    python benchmarks/scale_probes.py predict --model edgel3/sea-64 --audio LONG.wav --hop-size 0.5 --out-file OUT
    python benchmarks/scale_probes.py reduce-apply --reducer R --shards S --out T --out-file OUT
    python benchmarks/scale_probes.py input-pipeline --shards S --targets T --reducer R --out-file OUT
    python benchmarks/scale_probes.py train-steps --shards S --targets T --reducer R --out RUN --d 32 --out-file OUT

``predict``: bare ``model.keras.predict`` windows/s on the windows ``sea-tf teacher-embed`` cuts
from the file (mono → teacher rate → 1-s frames, the same ``prepare_frames``).
``reduce-apply``: rows/s of :func:`sea_tf.reduce.apply_reducer` (read embeddings, transform, write targets).
``input-pipeline``: rows/s of distill's training ``tf.data`` stream alone (no model), built exactly
as ``sea-tf distill`` builds it (one :class:`BlockReader`, ``data.*`` defaults), over one pass.
``train-steps``: steps/s of distill's training loop itself, after its first steps (tracing).
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def predict(args) -> dict:
    import soundfile as sf

    from sea_tf.audio import prepare_frames
    from sea_tf.models import load_model

    model = load_model(args.model)
    with sf.SoundFile(args.audio) as f:
        # The rate does not depend on how many windows are timed; a bounded stretch keeps this
        # probe's memory small whatever the file's length.
        x = f.read(min(f.frames, int(args.max_seconds * f.samplerate)), dtype="float32")
        sr = f.samplerate
    frames = prepare_frames(x, sr, model.sample_rate, hop_size=args.hop_size)[0]
    # Untimed first pass: predict traces once per batch shape (the last batch is usually smaller).
    model.keras.predict(frames, batch_size=args.batch_size, verbose=0)
    start = time.perf_counter()
    model.keras.predict(frames, batch_size=args.batch_size, verbose=0)
    wall = time.perf_counter() - start
    return {"windows": int(len(frames)), "wall_s": wall, "windows_per_s": len(frames) / wall}


def reduce_apply(args) -> dict:
    from sea_tf import config
    from sea_tf.reduce import apply_reducer

    cfg = config.load("reduce/apply", progress=False)
    start = time.perf_counter()
    card = apply_reducer(args.reducer, args.shards, args.out, chunk_rows=cfg["chunk_rows"], progress=cfg["progress"],
                         allow_partial=cfg["allow_partial"])
    wall = time.perf_counter() - start
    rows = int(card["teacher_shards"]["n_rows"])
    return {"rows": rows, "target_files": len(card["shards"]), "wall_s": wall, "rows_per_s": rows / wall}


def input_pipeline(args) -> dict:
    import numpy as np

    from sea_tf.distill import pairs as pairs_mod, pipeline
    from sea_tf.distill.defaults import DEFAULTS

    data = DEFAULTS["data"]
    pairs = pairs_mod.open_pairs(args.shards, args.targets, reducer_dir=args.reducer, check_rows=0, seed=0,
                                 allow_partial=DEFAULTS["allow_partial"])
    rows = np.arange(pairs.shards.n_rows, dtype=np.int64)
    reader = pipeline.BlockReader(pairs.shards, max_open_files=data["max_open_files"])
    blocks = pipeline.make_blocks(pairs.shards, rows, block_rows=data["block_rows"])
    ds = pipeline.train_dataset(pairs.shards, blocks, batch_size=args.batch_size, seed=0, shuffle=data["shuffle"],
                                shuffle_buffer=data["shuffle_buffer"], cycle_length=data["cycle_length"],
                                reader=reader)
    # One pass, from the start: the first batch waits for the shuffle buffer to fill, and those
    # reads are part of the pass (on a small table the buffer holds all of it).
    n_batches = max(1, len(rows) // args.batch_size)
    start = time.perf_counter()
    ends = []
    for _ in ds.take(n_batches):
        ends.append(time.perf_counter())
    reader.close()
    seen = len(ends) * args.batch_size
    wall = ends[-1] - start
    return {"rows": seen, "shards": len(pairs.shards.shards), "first_batch_s": ends[0] - start, "wall_s": wall,
            "rows_per_s": seen / wall, "max_open_files": data["max_open_files"]}


def train_steps(args) -> dict:
    """Steady-state training rate of ``sea-tf distill``'s own loop (the library call, a timing callback).

    The first ``--skip`` steps (tracing, the shuffle buffer filling) are left out, so the rate is
    that of the steps an epoch at scale is made of.
    """
    from sea_tf.backend import keras
    from sea_tf.config import resolve
    from sea_tf.distill import distill
    from sea_tf.distill.defaults import DEFAULTS

    cfg = resolve(DEFAULTS, "distill/sea-64", set_items=[
        f"shards={json.dumps([str(s) for s in args.shards])}", f"targets={args.targets}", f"reducer={args.reducer}",
        f"out={args.out}", "train.epochs=1", f"train.steps_per_epoch={args.steps}", "train.validation_steps=1",
        f"student.overrides.embedding_size={args.d}", "progress=false"])

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    clock = Clock()
    report = distill(cfg, log=lambda *_: None, callbacks=[clock])
    timed = clock.ends[args.skip:]
    wall = timed[-1] - timed[0]
    steps = len(timed) - 1
    batch = int(report["global_batch"])
    return {"steps": steps, "global_batch": batch, "wall_s": wall, "steps_per_s": steps / wall,
            "rows_per_s": steps * batch / wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--model", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--hop-size", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=600.0)
    r = sub.add_parser("reduce-apply")
    r.add_argument("--reducer", required=True)
    r.add_argument("--shards", required=True, action="append")
    r.add_argument("--out", required=True)
    i = sub.add_parser("input-pipeline")
    i.add_argument("--shards", required=True, action="append")
    i.add_argument("--targets", required=True)
    i.add_argument("--reducer", required=True)
    i.add_argument("--batch-size", type=int, default=64)
    t = sub.add_parser("train-steps")
    t.add_argument("--shards", required=True, action="append")
    t.add_argument("--targets", required=True)
    t.add_argument("--reducer", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--d", type=int, required=True)
    t.add_argument("--steps", type=int, default=60)
    t.add_argument("--skip", type=int, default=10)
    for q in (p, r, i, t):
        q.add_argument("--out-file", dest="json", required=True, metavar="FILE.json")
    args = parser.parse_args(argv)
    probes = {"predict": predict, "reduce-apply": reduce_apply, "input-pipeline": input_pipeline,
              "train-steps": train_steps}
    result = probes[args.probe](args)
    Path(args.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
