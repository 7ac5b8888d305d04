"""Everything a run directory remembers so that a killed run resumes where it was.

``RUN/state.json`` names the checkpoints of the run and holds what ``tf.train.Checkpoint`` does
not: the epoch count, the history, the best validation loss, and the internal state of
EarlyStopping and ReduceLROnPlateau (Keras resets both at ``on_train_begin``; :class:`RunState`
puts them back afterwards). The checkpoint holds the model (including pruning masks and steps),
the optimizer (Adam moments, iteration count, learning rate).

Checkpoints::

    RUN/checkpoints/latest/ckpt-<epoch>.*   the last epoch
    RUN/checkpoints/best/ckpt-<epoch>.*     lowest validation loss (used downstream)

After every epoch, in this order, so that a kill at any point leaves a resumable run:

1. the new checkpoints are written under new names and flushed to disk (``fsync``);
2. ``state.json`` is replaced atomically (flushed) and names them;
3. the checkpoints it no longer names are deleted.

Killed before 2, the old ``state.json`` still names the old checkpoints, which are still there;
killed after it, the new ones are complete. Whatever a kill leaves unnamed (new checkpoints
before step 2, old ones before step 3, TensorFlow's ``*_temp`` folders) is deleted when the run
restarts (:meth:`RunState.restore`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Mapping

from sea_tf import atomic
from sea_tf.backend import keras, tf
from sea_tf.config import flatten_keys, get_dotted
from sea_tf.errors import TrainError

if TYPE_CHECKING:  # annotations only: tqdm is imported when a bar is shown
    from tqdm import tqdm

STATE_FORMAT = "sea-tf-distill-state/1"
HISTORY_KEYS = ("epoch", "loss", "mae", "val_loss", "val_mae", "lr", "wall_s")


def check_resumable(run_dir: Path | str, cfg: dict, *, config_name: str, resumable_changes: Collection[str],
                    legacy_values: Mapping[str, object]) -> bool:
    """Refuse to resume into ``run_dir`` when it holds a run of another configuration.

    A key the saved config lacks (it was made before the key existed) counts as ``legacy_values[key]``,
    the value the code of that time used.

    Returns
    -------
    bool
        Whether ``run_dir`` holds a run to resume.
    """
    import yaml

    run_dir = Path(run_dir)
    old_path = run_dir / f"{config_name}.config.yaml"
    state_path = run_dir / "state.json"
    if not old_path.is_file():
        if state_path.is_file():
            raise TrainError(f"{run_dir}: holds a distillation state but no {old_path.name}; cannot tell which "
                             "configuration made it, choose a new output directory")
        return False
    old = yaml.safe_load(old_path.read_text()) or {}
    differ = []
    for key in flatten_keys(cfg):
        if key in resumable_changes:
            continue
        try:
            before = get_dotted(old, key)
        except KeyError:
            before = legacy_values.get(key, "<absent>")
            if key in legacy_values and before != get_dotted(cfg, key):
                before = f"<absent: {before}>"
        if before != get_dotted(cfg, key):
            differ.append(f"{key}: {before!r} -> {get_dotted(cfg, key)!r}")
    if differ:
        raise TrainError(f"{run_dir}: holds a run with another configuration ({'; '.join(differ[:5])}"
                         f"{' …' if len(differ) > 5 else ''}); resuming would mix two trainings. Re-run with the "
                         f"settings in {old_path}, or choose a new output directory (--out)")
    return state_path.is_file()


def read_state(run_dir: Path | str) -> dict | None:
    """The saved state of ``run_dir`` or None."""
    path = Path(run_dir) / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path}: unreadable ({exc}); delete the run directory to start over") from exc
    if state.get("format") != STATE_FORMAT:
        raise TrainError(f"{path}: not a sea-tf distillation state; choose another output directory")
    return state


def new_state() -> dict:
    return {"format": STATE_FORMAT, "epoch": 0, "iterations": 0, "history": [], "best": None,
            "latest_checkpoint": None, "early_stopping": None, "reduce_lr": None, "stopped": None,
            "train_seconds": 0.0}


class RunState(keras.callbacks.Callback):
    """Saves latest/best checkpoints, ``state.json`` and ``history.csv`` after every epoch.

    Must come after EarlyStopping, ReduceLROnPlateau, UpdatePruningStep and the time budget in
    the callback list: it records their state after they have acted on the epoch.

    Parameters
    ----------
    run_dir : Path
    checkpoint : tf.train.Checkpoint
        Tracks the training model and its optimizer.
    state : dict
        From :func:`read_state` or :func:`new_state`; updated in place.
    early_stopping : keras.callbacks.EarlyStopping
    reduce_lr : keras.callbacks.ReduceLROnPlateau
    best_from_epoch : int
        First epoch (0-based) allowed to become "best" (pruning: once the target sparsity is reached).
    chief : bool
        Whether this process writes files.
    save_dir : Path, optional
        Where the checkpoints go: ``run_dir`` (default) for the chief; a non-chief worker must
        pass its own temporary directory (:func:`sea_tf.distill.strategy.worker_dir`), since
        multi-worker saves may run collective ops, so every worker saves, but only the chief's
        files count.
    """

    def __init__(self, run_dir: Path | str, checkpoint: tf.train.Checkpoint, state: dict, *,
                 early_stopping: keras.callbacks.EarlyStopping, reduce_lr: keras.callbacks.ReduceLROnPlateau,
                 best_from_epoch: int = 0, chief: bool = True, save_dir: Path | str | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.state = state
        self.es, self.rlr = early_stopping, reduce_lr
        self.best_from_epoch = int(best_from_epoch)
        self.chief = chief
        if not chief and (save_dir is None or Path(save_dir) == self.run_dir):
            raise ValueError("a non-chief worker must save into its own directory (strategy.worker_dir), "
                             "not the chief's run directory")
        self.save_dir = Path(save_dir) if save_dir is not None else self.run_dir
        self._epoch_start: float | None = None

    def restore(self) -> int:
        """Load the latest checkpoint named in the state (if any); returns the epoch to start at.

        First deletes the checkpoint files the state does not name: what a run killed between
        writing a checkpoint and replacing ``state.json`` (or before deleting the old ones) left.
        """
        if self.chief:
            remove_unnamed_checkpoints(self.run_dir, self.state)
        path = self.state.get("latest_checkpoint")
        if not path:
            return 0
        full = str(self.run_dir / path)
        if not tf.io.gfile.exists(full + ".index"):
            raise TrainError(f"{self.run_dir}/state.json names checkpoint {path}, which is missing; delete the run "
                             "directory to start over")
        self.checkpoint.read(full).assert_existing_objects_matched()  # read(): the pair of write()
        return int(self.state["epoch"])

    def restore_best(self) -> dict | None:
        """Load the best-on-validation checkpoint (or the latest when none qualified)."""
        best = (self.state.get("best") or {}).get("checkpoint") or self.state.get("latest_checkpoint")
        if best:
            self.checkpoint.read(str(self.run_dir / best)).expect_partial()
        return self.state.get("best")

    def on_train_begin(self, logs: dict | None = None) -> None:
        # EarlyStopping and ReduceLROnPlateau have just reset themselves: put back what they knew.
        if self.state.get("early_stopping"):
            for key, value in self.state["early_stopping"].items():
                if value is not None:
                    setattr(self.es, key, value)
        if self.state.get("reduce_lr"):
            for key, value in self.state["reduce_lr"].items():
                if value is not None:
                    setattr(self.rlr, key, value)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        wall = time.perf_counter() - (self._epoch_start or time.perf_counter())
        lr = float(keras.backend.get_value(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, **{k: _num(logs.get(k)) for k in HISTORY_KEYS[1:5]}, "lr": lr,
               "wall_s": round(wall, 3)}
        state = self.state
        state["history"] = [h for h in state["history"] if h["epoch"] <= epoch] + [row]
        state["epoch"] = epoch + 1
        state["iterations"] = int(keras.backend.get_value(self.model.optimizer.iterations))
        state["train_seconds"] = float(state.get("train_seconds", 0.0)) + wall
        # Step 1 (module docstring): new checkpoints under new names; nothing is deleted yet.
        state["latest_checkpoint"] = f"checkpoints/latest/ckpt-{epoch + 1}"
        write_checkpoint(self.checkpoint, self.save_dir / state["latest_checkpoint"])
        val = logs.get("val_loss")
        if val is not None and math.isfinite(val) and epoch >= self.best_from_epoch and \
                (state["best"] is None or val < state["best"]["val_loss"]):
            state["best"] = {"epoch": epoch + 1, "val_loss": float(val), "val_mae": _num(logs.get("val_mae")),
                             "checkpoint": f"checkpoints/best/ckpt-{epoch + 1}"}
            write_checkpoint(self.checkpoint, self.save_dir / state["best"]["checkpoint"])
        state["early_stopping"] = {"wait": int(self.es.wait), "best": _num(self.es.best),
                                   "best_epoch": int(getattr(self.es, "best_epoch", 0))}
        state["reduce_lr"] = {"wait": int(self.rlr.wait), "best": _num(self.rlr.best),
                              "cooldown_counter": int(self.rlr.cooldown_counter)}
        if self.model.stop_training and state["stopped"] is None:
            state["stopped"] = "early_stopping" if getattr(self.es, "stopped_epoch", 0) == epoch else "requested"
        if self.chief:
            write_state(self.run_dir, state)  # step 2: the state names the new checkpoints
        remove_unnamed_checkpoints(self.save_dir, state)  # step 3


CHECKPOINT_DIRS = ("checkpoints/latest", "checkpoints/best")


def write_checkpoint(checkpoint: tf.train.Checkpoint, prefix: Path | str) -> Path:
    """Write ``checkpoint`` to ``prefix`` (``<prefix>.index`` + ``<prefix>.data-*``) and flush it to disk.

    Parameters
    ----------
    checkpoint : tf.train.Checkpoint
    prefix : Path
        ``.../checkpoints/<kind>/ckpt-<epoch>``; files already there under that prefix (left by a
        killed run, never named by a state) are overwritten.

    Returns
    -------
    Path
        ``prefix``.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    # write(), not save(): save() also keeps a `checkpoint` index file and deletes old checkpoints
    # on its own schedule, which is the order this module must control.
    checkpoint.write(str(prefix))
    files = checkpoint_files(prefix)
    if not any(f.name.endswith(".index") for f in files):
        raise TrainError(f"{prefix}: TensorFlow wrote no checkpoint index; check free space in {prefix.parent}")
    for file in files:
        atomic.fsync_file(file)
    atomic.fsync_dir(prefix.parent)
    return prefix


def checkpoint_files(prefix: Path | str) -> list[Path]:
    """The files of the checkpoint ``prefix``: ``<name>.index`` and ``<name>.data-*`` (sorted list of Path)."""
    prefix = Path(prefix)
    if not prefix.parent.is_dir():
        return []
    return sorted(p for p in prefix.parent.iterdir()
                  if p.name == prefix.name + ".index" or p.name.startswith(prefix.name + ".data-"))


def remove_unnamed_checkpoints(save_dir: Path | str, state: dict) -> list[Path]:
    """Delete everything in ``save_dir``'s checkpoint folders that ``state`` does not name.

    Parameters
    ----------
    save_dir : Path
        The run directory (or a non-chief worker's temporary directory).
    state : dict
        Names ``latest_checkpoint`` and ``best.checkpoint`` (relative to ``save_dir``).

    Returns
    -------
    list of Path
        What was deleted.
    """
    save_dir = Path(save_dir)
    keep = {save_dir / p for p in (state.get("latest_checkpoint"), (state.get("best") or {}).get("checkpoint")) if p}
    kept_files = {f for prefix in keep for f in checkpoint_files(prefix)}
    removed = []
    for name in CHECKPOINT_DIRS:
        folder = save_dir / name
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            # Only checkpoint names: a user's notes in the folder are not ours to delete.
            if not entry.name.startswith("ckpt-") or entry in kept_files:
                continue
            if entry.is_dir():  # TensorFlow's <prefix>_temp folder of a write that was killed
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        # A CheckpointManager `checkpoint` file of an older sea-tf points at deleted names.
        stale = folder / "checkpoint"
        if stale.is_file():
            stale.unlink()
            removed.append(stale)
    # No fsync: a deletion lost in a crash leaves an unnamed file, which the next start deletes again.
    return removed


def write_state(run_dir: Path | str, state: dict) -> None:
    """Write ``state.json`` and ``history.csv`` atomically."""
    atomic.write_json(Path(run_dir) / "state.json", state)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(HISTORY_KEYS))
    writer.writeheader()
    writer.writerows(state["history"])
    atomic.write_text(Path(run_dir) / "history.csv", buffer.getvalue())


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch during which ``budget_s`` seconds of training (this process) passed."""

    def __init__(self, budget_s: float | None, state: dict) -> None:
        super().__init__()
        self.budget_s, self.state = budget_s, state
        self._start = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.budget_s and time.perf_counter() - self._start >= float(self.budget_s):
            self.model.stop_training = True
            self.state["stopped"] = "time_budget"


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over the steps of each epoch with the running loss."""

    def __init__(self, steps: int, epochs: int, *, disable: bool = False) -> None:
        super().__init__()
        self.steps, self.epochs, self.disable = steps, epochs, disable
        self.bar: tqdm | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=self.steps, desc=f"distill epoch {epoch + 1}/{self.epochs}", unit="step",
                        disable=self.disable, leave=False)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        assert self.bar is not None  # opened by on_epoch_begin
        self.bar.update(1)
        if logs and batch % 10 == 0:
            self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4g}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        assert self.bar is not None  # opened by on_epoch_begin
        self.bar.close()
        if not self.disable and logs:
            parts = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if isinstance(v, (int, float)))
            print(f"distill epoch {epoch + 1}/{self.epochs}: {parts}", flush=True)


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class EventLog(keras.callbacks.Callback):
    """TensorBoard scalars (train and validation loss/MAE, learning rate) per epoch.

    ``keras.callbacks.TensorBoard`` needs the ``tensorboard`` package, which the pinned stack does
    not install (TF ≥ 2.16 no longer depends on it); TensorFlow's own summary writer writes the
    same event files, tagged for TensorBoard's scalar dashboard. View with ``tensorboard --logdir``.
    """

    def __init__(self, log_dir: Path | str, *, chief: bool = True) -> None:
        super().__init__()
        self.log_dir, self.chief = str(log_dir), chief
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, split: str) -> tf.summary.SummaryWriter:
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(f"{self.log_dir}/{split}")
        return self._writers[split]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.chief:
            return
        from tensorflow.core.framework import summary_pb2
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR)
        logs = dict(logs or {})
        logs.setdefault("lr", keras.backend.get_value(self.model.optimizer.learning_rate))
        for key, value in logs.items():
            split, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(split).as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value)), step=epoch + 1, metadata=metadata)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
