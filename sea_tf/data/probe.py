"""How learnable a labelled dataset is: a linear probe on mean log-mel band energies.

Used to check that the demo dataset is learnable but not trivial (benchmarks/bench_demo_dataset.py,
the data demo step and a test): a logistic regression on each clip's time-averaged log-mel
spectrum, evaluated with the dataset's own folds (train on all other folds, test on fold k).
"""
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sea_tf.data.base import Clip


def mean_logmel_features(clips: "Sequence[Clip]", *, sr: int = 22050, n_mels: int = 64,
                         progress: bool = False) -> npt.NDArray[np.float32]:
    """Time-averaged log-mel band energies of each clip.

    Parameters
    ----------
    clips : sequence of sea_tf.data.Clip
    sr : int
        Every clip is resampled to this rate (Hz) and mixed to mono first.
    n_mels : int
        Number of mel bands (``fmax = sr / 2``).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    np.ndarray [shape=(len(clips), n_mels)], float32
        Mean over frames of ``power_to_db(melspectrogram)`` in dB.
    """
    import librosa
    from tqdm import tqdm

    feats = np.zeros((len(clips), n_mels), dtype=np.float32)
    for i, clip in enumerate(tqdm(clips, desc="log-mel", unit="clip", disable=not progress)):
        audio, _ = librosa.load(clip.path, sr=sr, mono=True)
        mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=1024, hop_length=512, n_mels=n_mels)
        feats[i] = librosa.power_to_db(mel, ref=1.0, top_db=None).mean(axis=1)
    return feats


def linear_probe_accuracy(features: npt.ArrayLike, labels: npt.ArrayLike, folds: npt.ArrayLike, *, C: float = 0.3,
                          seed: int) -> dict[str, Any]:
    """Leave-one-fold-out accuracy of a standardised logistic regression.

    Parameters
    ----------
    features : np.ndarray [shape=(n_clips, n_features)]
    labels, folds : np.ndarray [shape=(n_clips,)], int
    C : float
        Inverse L2 strength; mild regularisation keeps the fit fast and stable when a few
        clips make the training set separable (C=1 gives about 1 point more on 400 clips).
    seed : int

    Returns
    -------
    dict
        ``mean_fold_accuracy`` (mean over test folds, the UrbanSound8K convention),
        ``pooled_accuracy`` (all test predictions together), ``fold_accuracy`` {fold: accuracy}
        and ``predictions`` (int array [n_clips], each clip predicted when its fold was held out).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    features, labels, folds = np.asarray(features), np.asarray(labels), np.asarray(folds)
    predictions = np.full(labels.shape, -1)
    fold_accuracy: dict[int, float] = {}
    # One BLAS thread: on a busy 2-core machine OpenBLAS threads spin-wait and make these tiny
    # fits ~30x slower in CPU time.
    with threadpool_limits(limits=1):
        for fold in np.unique(folds):
            test = folds == fold
            model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
            model.fit(features[~test], labels[~test])
            predictions[test] = model.predict(features[test])
            fold_accuracy[int(fold)] = float(np.mean(predictions[test] == labels[test]))
    return {"mean_fold_accuracy": float(np.mean(list(fold_accuracy.values()))),
            "pooled_accuracy": float(np.mean(predictions == labels)),
            "fold_accuracy": fold_accuracy, "predictions": predictions}
