"""The early-stopping epoch loop shared by the classify stage's networks (the frame MLP of
:mod:`~sea_tf.classify.mlp`, the UST MIL and framewise networks of :mod:`~sea_tf.classify.mil`).

Each epoch reshuffles the training items (one permutation from a generator seeded by ``seed``),
trains one pass, then computes the validation loss; the weights of the lowest validation loss are
kept and training stops after ``patience`` epochs without improvement. Without validation data,
every epoch runs and the last weights stay.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from sea_tf.backend import keras, tf
from sea_tf.errors import ClassifyError


def train_epochs(model: keras.Model, train_epoch: Callable, eval_loss: Callable, x_train: tf.Tensor, y_train: tf.Tensor,
                 validation: tuple[tf.Tensor, tf.Tensor] | None, *, epochs: int, patience: int, seed: int,
                 progress: bool, desc: str, learning_rate_key: str) -> dict:
    """Run the epochs; leave the best-validation-loss weights in ``model``.

    Parameters
    ----------
    model : keras.Model
        Trained in place by ``train_epoch``.
    train_epoch : callable
        ``train_epoch(x, y, order) -> mean loss`` of one pass over ``x[order]`` (a tf.function).
    eval_loss : callable
        ``eval_loss(x, y) -> loss`` on the validation items (the training objective, L2 included).
    x_train, y_train : tf.Tensor [shape=(N, ...)]
        Training items and their targets.
    validation : tuple of tf.Tensor or None
        ``(x_val, y_val)``; None: no early stopping.
    epochs, patience : int
        Most epochs; epochs without a lower validation loss before stopping.
    seed : int
        Seeds the per-epoch shuffles.
    progress : bool
        Show a tqdm bar over epochs (``desc`` its label).
    learning_rate_key : str
        The setting a diverged run should lower (named in its error).

    Returns
    -------
    dict
        ``epochs_run``, ``final_train_loss``, and with validation ``best_epoch`` (1-based) and
        ``best_val_loss``.

    Raises
    ------
    ClassifyError
        The training loss is not finite.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    n_items = int(x_train.shape[0])
    best, best_epoch, best_weights, waited, loss, epoch = np.inf, 0, None, 0, float("nan"), 0
    bar = tqdm(total=int(epochs), desc=desc, unit="epoch", leave=False, disable=not progress)
    for epoch in range(1, int(epochs) + 1):
        loss = float(train_epoch(x_train, y_train, tf.constant(rng.permutation(n_items))))
        if not np.isfinite(loss):
            raise ClassifyError(f"training diverged (loss {loss}) at epoch {epoch}; lower {learning_rate_key}")
        post = {"loss": f"{loss:.4f}"}
        if validation is not None:
            val = float(eval_loss(*validation))
            post["val_loss"] = f"{val:.4f}"
            if val < best:
                best, best_epoch, best_weights, waited = val, epoch, model.get_weights(), 0
            else:
                waited += 1
        bar.set_postfix(post)
        bar.update(1)
        if validation is not None and waited >= int(patience):
            break
    bar.close()
    result = {"epochs_run": epoch, "final_train_loss": loss}
    if best_weights is not None:
        model.set_weights(best_weights)
        result.update(best_epoch=best_epoch, best_val_loss=float(best))
    return result
