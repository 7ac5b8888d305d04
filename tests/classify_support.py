"""Helpers shared by the classify tests: a cheap, deterministic stand-in for an embedding model, and a
tiny UrbanSound8K-layout dataset of tones."""
import csv

import numpy as np
import soundfile as sf

from sea_tf.classify.features import Embedder


def band_embedder(key="model-a", name="bands", calls=None):
    """A cheap stand-in for an embedding model: log energy in 8 frequency bands of each window."""
    def embed(frames):
        if calls is not None:
            calls.append(len(frames))
        spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        bands = np.array_split(spec, 8, axis=1)
        return np.log10(np.stack([b.sum(1) for b in bands], axis=1) + 1e-6).astype(np.float32)
    return Embedder(name=name, key=key, card={"name": name}, sample_rate=8000, frame_samples=8000, embed_frames=embed)


TONES = {0: 300.0, 3: 1200.0, 6: 2800.0}    # classIDs used, tone frequency (Hz)
NAMES = {0: "air_conditioner", 3: "dog_bark", 6: "gun_shot"}


def write_tone_us8k(root, sr, seed, tone, end):
    """UrbanSound8K layout under ``root``: 10 folds x the :data:`TONES` classes x one clip each.

    ``tone(rng, f0) -> float32 samples at sr Hz`` makes each clip (``rng`` seeded with ``seed``, drawn
    in fold then class order); ``end`` (s) goes into the metadata. Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for fold in range(1, 11):
        for cid, f0 in TONES.items():
            name = f"{100 + fold}-{cid}-0-0.wav"
            path = root / "audio" / f"fold{fold}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(rng, f0), sr)
            rows.append([name, 100 + fold, 0, end, 1, fold, cid, NAMES[cid]])
    (root / "metadata").mkdir()
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]]
                                 + rows)
    return root
