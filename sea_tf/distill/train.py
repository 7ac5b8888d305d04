"""``sea-tf distill``: train a student to regress the reduced teacher targets from its own audio (docs/PROTOCOL.md §3.4).

Straight line: check inputs → split by source → build the student (and its pruning wrappers) →
fit with Adam/MSE, ReduceLROnPlateau and EarlyStopping → best-on-validation weights → strip →
save the student with its card → evaluate on held-out sources → optional QAT fine-tune.

Run directory (``out``)::

    distill.config.yaml          the resolved config (a re-run with another one is refused)
    split.json                   train/validation source files
    state.json, history.csv      epoch log and resume state (see runstate.py)
    checkpoints/{latest,best}/   tf.train.Checkpoint files
    tensorboard/                 TensorBoard logs
    loss.png                     loss curves
    student.keras, student.card.json   the distilled student (best on validation, pruning stripped)
    student-qat.h5 (+ card)      with qat.enabled (see qat.py)
    report.json                  evaluation and run figures
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import yaml

from sea_tf import atomic, cards, runlock
from sea_tf.backend import keras, tf
from sea_tf.config import flatten_keys, get_dotted, write_resolved
from sea_tf.distill import evaluate, pairs as pairs_mod, pipeline, pruning, runstate, student as student_mod
from sea_tf.distill import strategy as strategy_mod
from sea_tf.distill.defaults import DEFAULTS, LEGACY_VALUES, RESUMABLE_CHANGES
from sea_tf.errors import ConfigError, TrainError
from sea_tf.models import calibrate_batchnorm
from sea_tf.models.architectures import HEADS
from sea_tf.models.seamodel import SeaModel

CONFIG_NAME = "distill"


def distill(cfg: dict, *, log: Callable[[str], object] = print,
            callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Run (or resume) one distillation.

    Parameters
    ----------
    cfg : dict
        A resolved config shaped like :data:`sea_tf.distill.defaults.DEFAULTS`.
    log : callable
        Receives one-line progress messages.
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks, called after the run's own (they see the restored state).

    Returns
    -------
    dict
        The run report (also written to ``out/report.json``).
    """
    # What a run holds until it returns, also when it fails: open shard files, a non-chief
    # worker's temporary checkpoint directory.
    with contextlib.ExitStack() as cleanup:
        return _distill(cfg, log, callbacks, cleanup)


def _distill(cfg: dict, log: Callable[[str], object], callbacks: Sequence[keras.callbacks.Callback],
             cleanup: contextlib.ExitStack) -> dict:
    start = time.perf_counter()
    cfg = copy.deepcopy(cfg)
    # The inputs by their absolute paths: `--shards data/shards` and `--shards /abs/data/shards` are one
    # run (resumed, or a finished no-op), and the config written beside the run says where they are.
    shards = [cfg["shards"]] if isinstance(cfg["shards"], (str, Path)) else cfg["shards"]
    cfg["shards"] = [str(Path(p).expanduser().resolve()) for p in shards]
    for key in ("targets", "reducer"):
        if cfg[key] is not None:
            cfg[key] = str(Path(cfg[key]).expanduser().resolve())
    run_dir = Path(cfg["out"])
    _check_config(cfg)
    # Logical CPU devices must exist before anything creates TensorFlow's context.
    strategy = strategy_mod.make_strategy(cfg["strategy"]["kind"], cpu_devices=cfg["strategy"]["cpu_devices"])
    chief = strategy_mod.is_chief(strategy)
    resuming = runstate.check_resumable(run_dir, cfg, config_name=CONFIG_NAME, resumable_changes=RESUMABLE_CHANGES,
                                        legacy_values=LEGACY_VALUES)
    data, train_cfg, seed = cfg["data"], cfg["train"], int(cfg["seed"])

    pairs = pairs_mod.open_pairs(cfg["shards"], cfg["targets"], reducer_dir=cfg["reducer"],
                                 check_rows=data["check_rows"], seed=seed, allow_partial=cfg["allow_partial"])
    split = pairs_mod.split_by_source(pairs.shards, valid_fraction=data["valid_fraction"], seed=seed)
    if resuming and (run_dir / "split.json").is_file():
        pairs_mod.check_split(split, run_dir / "split.json")
    done = finished_report(run_dir, cfg, pairs) if resuming else None
    if done is not None:
        # A re-run of a finished run: rewriting student.keras would give it a new sha256 (the
        # archive holds a timestamp), and the stages keyed on that hash would redo their work.
        log(f"{run_dir}: already distilled with this configuration ({done.get('epochs_run')} epochs, stopped: "
            f"{done.get('stopped')}, kept epoch {done.get('kept_epoch')}); nothing to do, see {run_dir / 'report.json'}")
        return {**done, "already_done": True}
    keras.utils.set_random_seed(seed)
    with strategy.scope():  # variables of a distributed run must be created in its scope
        seamodel = student_mod.build(cfg["student"]["preset"], overrides=cfg["student"]["overrides"],
                                     head=cfg["student"]["head"], d=pairs.d,
                                     frame_samples=pairs.frame_samples, seed=seed)
    warm = student_mod.warm_start(seamodel, cfg["student"]["init"]) if cfg["student"]["init"] else None
    if train_cfg["calibrate_bn"] and not warm and not resuming:
        # BN moving statistics start at 0/1 while dB images are in [-80, 0]: inference-mode outputs
        # (validation) would be meaningless for the many steps the moving averages take to catch up.
        rows = np.random.default_rng(seed).choice(split.train_rows, min(len(split.train_rows),
                                                                       int(train_cfg["calibrate_bn"])), replace=False)
        calibrate_batchnorm(seamodel, pairs.shards.read("audio", np.sort(rows)))

    replicas = strategy.num_replicas_in_sync
    batch = global_batch(train_cfg["batch_size"], replicas, scale_with_replicas=train_cfg["scale_batch_with_replicas"])
    if len(split.train_rows) < batch:
        raise TrainError(f"only {len(split.train_rows)} training windows for a global batch of {batch}; "
                         "lower train.batch_size or embed more audio")
    steps = int(train_cfg["steps_per_epoch"] or len(split.train_rows) // batch)
    # The same validation batches every epoch: all held-out windows, or the first
    # train.validation_steps batches of them when there are more (never a stream that runs dry).
    valid_steps = pipeline.validation_batches(len(split.valid_rows), batch,
                                              validation_steps=train_cfg["validation_steps"])
    epochs = int(train_cfg["epochs"])
    prune_cfg = cfg["pruning"]
    targets_by_layer: dict[str, float] | None = None
    prune_fn: Callable[[keras.Model], keras.Model] | None = None
    best_from_epoch, masks = 0, None
    if prune_cfg["enabled"]:
        targets_by_layer = pruning.layer_targets(seamodel.network(), prune_cfg["target_sparsity"],
                                                 per_layer=prune_cfg["per_layer"], exclude=prune_cfg["exclude"])
    if prune_cfg["enabled"] and prune_cfg["schedule"] == "one-shot":
        # EdgeL3: masks from the starting (pretrained) weights, fixed while retraining. A resumed run
        # restores weights that already carry the zeros, so recomputing the masks gives the same ones.
        assert targets_by_layer is not None  # set above: pruning is enabled
        masks = pruning.magnitude_masks(seamodel.network(), targets_by_layer)
        pruning.apply_masks(seamodel.network(), masks)
    elif prune_cfg["enabled"]:
        assert targets_by_layer is not None  # set above: pruning is enabled
        begin = int(prune_cfg["begin_step"])
        end_step = begin + max(1, int(round(float(prune_cfg["end_fraction"]) * (epochs * steps - begin))))
        best_from_epoch = math.ceil(end_step / steps) - 1  # first epoch ending at full sparsity
        layer_sparsity = targets_by_layer

        def prune_fn(network: keras.Model) -> keras.Model:
            return pruning.prune_network(network, layer_sparsity, begin_step=begin, end_step=end_step,
                                         initial_sparsity=prune_cfg["initial_sparsity"],
                                         frequency=prune_cfg["frequency"])

    # Nothing was trained yet: every input check has passed. Record the run, holding its folder for
    # the life of the process: a second run on it would delete this one's checkpoints.
    run_dir.mkdir(parents=True, exist_ok=True)
    if chief:
        cleanup.enter_context(runlock.locked(run_dir, command="distill"))
    if chief:
        write_resolved(cfg, run_dir, CONFIG_NAME)
        if not resuming:
            pairs_mod.write_split(split, run_dir / "split.json", valid_fraction=data["valid_fraction"], seed=seed)
    state = (runstate.read_state(run_dir) if resuming else None) or runstate.new_state()

    with strategy.scope():
        model, network = student_mod.training_model(seamodel, mixed_precision=cfg["strategy"]["mixed_precision"],
                                                    prune=prune_fn)
        adam = keras.optimizers.Adam(learning_rate=float(train_cfg["learning_rate"]))
        adam.build(model.trainable_variables)  # slots exist before a restore fills them
        # float16 gradients underflow without loss scaling; the model itself is float32-policy.
        optimizer = keras.mixed_precision.LossScaleOptimizer(adam) if cfg["strategy"]["mixed_precision"] else adam
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    # patience null: never stop early, so the run takes a fixed number of steps whatever its losses
    # (the demo's). A patience longer than the run never runs out; the callback stays for its saved state.
    patience = train_cfg["early_stopping"]["patience"]
    es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=train_cfg["early_stopping"]["min_delta"],
                                       patience=epochs + 1 if patience is None else patience,
                                       start_from_epoch=best_from_epoch)
    rlr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=train_cfg["reduce_lr"]["factor"],
                                            patience=train_cfg["reduce_lr"]["patience"],
                                            min_delta=train_cfg["reduce_lr"]["min_delta"], verbose=0)
    # A non-chief worker's checkpoints go to a temporary directory, removed when the run ends (also on error).
    save_dir = cleanup.enter_context(strategy_mod.worker_dir(run_dir, chief=chief))
    saver = runstate.RunState(run_dir, checkpoint, state, early_stopping=es, reduce_lr=rlr,
                              best_from_epoch=best_from_epoch, chief=chief, save_dir=save_dir)
    initial_epoch = saver.restore()
    # A run stopped by its time budget continues when re-run without one (train.time_budget_s: null).
    finished = training_finished(state, train_cfg)
    if finished:
        log(f"{run_dir}: training already finished ({state.get('stopped') or 'epochs'}); re-evaluating the best checkpoint")
    else:
        state["stopped"] = None
        if initial_epoch:
            log(f"resuming {run_dir} at epoch {initial_epoch + 1} (optimizer step "
                f"{int(model.optimizer.iterations.numpy())})")

    # One reader for every dataset: data.max_open_files bounds the whole run's open shard files.
    reader = pipeline.BlockReader(pairs.shards, max_open_files=data["max_open_files"])
    cleanup.callback(reader.close)
    train_ds = pipeline.train_dataset(pairs.shards, pipeline.make_blocks(pairs.shards, split.train_rows,
                                                                         block_rows=data["block_rows"]),
                                      batch_size=batch, seed=seed, shuffle=data["shuffle"],
                                      shuffle_buffer=data["shuffle_buffer"],
                                      cycle_length=data["cycle_length"],
                                      rows_done=int(model.optimizer.iterations.numpy()) * batch, reader=reader)
    valid_blocks = pipeline.make_blocks(pairs.shards, split.valid_rows, block_rows=data["block_rows"])
    valid_ds = pipeline.eval_dataset(pairs.shards, valid_blocks, batch_size=batch, max_batches=valid_steps,
                                     reader=reader)
    fit_callbacks = (pruning.callbacks() if prune_fn else []) + \
        ([pruning.FixedMasks(network, masks)] if masks is not None else []) + [
        runstate.ProgressBar(steps, epochs, disable=not cfg["progress"]),
        es, rlr, runstate.EventLog(run_dir / "tensorboard", chief=chief),
        runstate.TimeBudget(train_cfg["time_budget_s"], state),
        saver, *callbacks]
    fit_start = time.perf_counter()
    if not finished:
        model.fit(train_ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                  # validation_steps=None: Keras then re-iterates the finite valid_ds from its start every
                  # epoch; given a step count, it keeps one iterator across epochs, which runs dry.
                  validation_data=valid_ds, validation_steps=None, callbacks=fit_callbacks, verbose=0)
        if state["stopped"] is None and state["epoch"] >= epochs:
            state["stopped"] = "epochs"
        if chief:
            runstate.write_state(run_dir, state)
    fit_seconds = time.perf_counter() - fit_start
    trained_epochs = max(0, state["epoch"] - initial_epoch)

    # The model used downstream: best on validation, wrappers stripped, float32.
    best = saver.restore_best()
    body = pruning.strip(network) if prune_fn else network
    student_mod.copy_back(seamodel, body)
    sparsity = pruning.measure_sparsity(seamodel.network(), targets_by_layer)
    preds, targets = evaluate.predict(seamodel.keras, pipeline.eval_dataset(
        pairs.shards, valid_blocks, batch_size=batch, max_batches=_eval_batches(cfg["evaluate"]["max_rows"], batch),
        reader=reader))
    metrics = evaluate.regression_metrics(preds, targets)
    report = {"run_dir": str(run_dir), "student": None, "held_out": metrics,
              "d": pairs.d, "split": split.summary(), "replicas": replicas, "global_batch": batch,
              "per_replica_batch": per_replica_batches(batch, replicas),
              "steps_per_epoch": steps, "epochs_run": state["epoch"], "stopped": state["stopped"],
              "validation": {"windows": int(min(len(split.valid_rows), valid_steps * batch)),
                             "batches": int(valid_steps), "validation_steps": train_cfg["validation_steps"]},
              **kept_epoch(state, best_from_epoch=best_from_epoch), "best": best,
              "final_lr": state["history"][-1]["lr"] if state["history"] else None,
              "fit_windows_per_s": (trained_epochs * steps * batch / fit_seconds) if trained_epochs else None,  # incl. validation
              "sparsity": {"total": sparsity["total"], "pruned_total": sparsity["pruned_total"],
                           "schedule": prune_cfg["schedule"]} if prune_cfg["enabled"] else None,
              "warm_start": warm}
    if cfg["evaluate"]["downstream"]:
        report["downstream"] = evaluate.downstream_accuracy(seamodel, pairs.shards, split, seed=seed,
                                                            progress=cfg["progress"])
    # Every worker saves (reading multi-worker batch-norm statistics is a collective op); the chief's copy is kept.
    with strategy_mod.worker_dir(run_dir, chief=chief) as student_dir:
        saved = _save_student(seamodel, student_dir / "student.keras", pairs, cfg, best, warm,
                              {**sparsity, "pruned": bool(prune_cfg["enabled"]),
                               "schedule": prune_cfg["schedule"] if prune_cfg["enabled"] else None}, metrics)
    if chief:
        report["student"] = str(saved)
        if state["history"]:
            report["loss_png"] = str(evaluate.plot_history(state["history"], run_dir / "loss.png",
                                                           title=f"{seamodel.name} → d={pairs.d}"))
    if cfg["qat"]["enabled"]:
        from sea_tf.distill import qat
        # valid_ds already holds exactly the validation batches: no step count (see model.fit above).
        report["qat"] = qat.fine_tune(seamodel, train_ds, valid_ds, steps=steps, valid_steps=None, cfg=cfg,
                                      run_dir=run_dir, chief=chief, pairs=pairs, log=log)
    report["wall_s"] = round(time.perf_counter() - start, 2)
    if chief:
        atomic.write_json(run_dir / "report.json", report)
    return report


def training_finished(state: dict, train_cfg: dict) -> bool:
    """Whether a run in ``state`` has nothing left to train under ``train_cfg`` (the ``train`` section).

    A run stopped by its time budget continues when re-run without one (``time_budget_s: null``).
    """
    return int(state.get("epoch") or 0) >= int(train_cfg["epochs"]) or state.get("stopped") == "early_stopping" or \
        (state.get("stopped") == "time_budget" and bool(train_cfg["time_budget_s"]))


def finished_report(run_dir: Path | str, cfg: dict, pairs: pairs_mod.Pairs) -> dict | None:
    """The report of a finished run of exactly this configuration on these inputs, or None.

    Finished means: ``distill.config.yaml`` equals ``cfg`` (``progress`` and the spelling of
    ``out`` aside), the training has nothing left to do (:func:`training_finished`), ``report.json``
    exists (written last), ``student.keras`` still has the sha256 its card records and was
    distilled on the targets ``pairs`` holds now, and the QAT student exists when asked for.

    Parameters
    ----------
    run_dir : Path
    cfg : dict
        The resolved config of this call.
    pairs : sea_tf.distill.pairs.Pairs
        The inputs as opened now.

    Returns
    -------
    dict or None
        ``report.json`` as written by the finished run.
    """
    run_dir = Path(run_dir)
    report_path, student = run_dir / "report.json", run_dir / "student.keras"
    state = runstate.read_state(run_dir)
    if state is None or not report_path.is_file() or not student.is_file() or \
            not training_finished(state, cfg["train"]):
        return None
    old = yaml.safe_load((run_dir / f"{CONFIG_NAME}.config.yaml").read_text()) or {}
    for key in flatten_keys(cfg):
        if key in ("progress", "out"):
            continue
        try:
            if get_dotted(old, key) != get_dotted(cfg, key):
                return None
        except KeyError:
            return None
    card = cards.read_card(student, required=False) or {}
    if (card.get("weights") or {}).get("sha256") != cards.sha256_file(student) or \
            card.get("reducer") != pairs.reference():
        return None
    try:
        report = json.loads(report_path.read_text())
    except ValueError:
        return None
    if cfg["qat"]["enabled"] and not (report.get("qat") and Path(report["qat"]["path"]).is_file()):
        return None
    return report


def kept_epoch(state: dict, *, best_from_epoch: int = 0) -> dict:
    """Which epoch's weights ``student.keras`` holds, and why (the ``kept_*`` keys of report.json).

    Parameters
    ----------
    state : dict
        The run state (:mod:`sea_tf.distill.runstate`) after training.
    best_from_epoch : int
        First epoch (0-based) allowed to be "best" (pruning: the first at full sparsity).

    Returns
    -------
    dict
        ``kept_epoch`` (1-based, None before any epoch), ``kept_because`` (a phrase) and
        ``kept_val_loss``.
    """
    best = state.get("best")
    if best:
        because = "lowest val_loss" if not best_from_epoch else \
            f"lowest val_loss from epoch {best_from_epoch + 1} on (the first at the target sparsity)"
        return {"kept_epoch": int(best["epoch"]), "kept_because": because, "kept_val_loss": best["val_loss"]}
    if state.get("epoch"):
        return {"kept_epoch": int(state["epoch"]), "kept_because": "last epoch (no epoch had a finite val_loss"
                + (f" from epoch {best_from_epoch + 1} on)" if best_from_epoch else ")"), "kept_val_loss": None}
    return {"kept_epoch": None, "kept_because": "not trained", "kept_val_loss": None}


def _save_student(seamodel: SeaModel, path: Path, pairs: pairs_mod.Pairs, cfg: dict, best: dict | None,
                  warm: dict | None, sparsity: dict, metrics: dict) -> Path:
    card = seamodel.card
    card["weights"] = {"source": "trained", "seed": int(cfg["seed"]), "path": str(path),
                       "init": warm["spec"] if warm else None}
    card["reducer"] = pairs.reference()
    card["distill_run"] = {"dir": str(path.parent), "best_epoch": (best or {}).get("epoch"),
                           "best_val_loss": (best or {}).get("val_loss"), "held_out": metrics,
                           "warm_start": warm}
    card["sparsity"] = sparsity
    seamodel.save(path)
    card["weights"]["sha256"] = cards.sha256_file(path)
    cards.write_card(path, card)
    return path


def global_batch(batch_size: int, replicas: int, *, scale_with_replicas: bool = False) -> int:
    """Windows per optimizer step over all replicas.

    The published recipe (docs/PROTOCOL.md §3.4, Keras ``multi_gpu_model``) splits one batch of
    ``batch_size`` across the GPUs, so an epoch of N steps sees the same rows on 1 or 2 GPUs;
    ``scale_with_replicas`` (``train.scale_batch_with_replicas``) gives each replica
    ``batch_size`` instead (global ``batch_size × replicas``, twice the data per epoch on 2 GPUs).

    Parameters
    ----------
    batch_size : int
        ``train.batch_size``.
    replicas : int
        ``strategy.num_replicas_in_sync``.
    scale_with_replicas : bool

    Returns
    -------
    int
    """
    batch = int(batch_size) * (int(replicas) if scale_with_replicas else 1)
    if batch < replicas:
        raise TrainError(f"a global batch of {batch} cannot be split across {replicas} replicas; "
                         f"raise train.batch_size to at least {replicas}")
    return batch


def per_replica_batches(batch: int, replicas: int) -> list[int]:
    """How tf.distribute splits a global batch: as evenly as possible, the first replicas one row more."""
    return [batch // replicas + (1 if r < batch % replicas else 0) for r in range(replicas)]


def _eval_batches(max_rows: int | None, batch: int) -> int | None:
    return math.ceil(int(max_rows) / batch) if max_rows else None


def _check_config(cfg: dict) -> None:
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise TrainError(f"unknown distill setting(s) {sorted(unknown)}")
    train = cfg["train"]
    pipeline.check_shuffle(cfg["data"]["shuffle"])
    if cfg["student"]["head"] not in HEADS:
        raise ConfigError(f"student.head must be one of {', '.join(HEADS)}; got {cfg['student']['head']!r}")
    if not isinstance(cfg["data"]["max_open_files"], int) or cfg["data"]["max_open_files"] < 2:
        raise TrainError(f"data.max_open_files must be an integer of at least 2 (a shard and its target file), "
                         f"got {cfg['data']['max_open_files']!r}")
    for key in ("epochs", "batch_size"):
        if not isinstance(train[key], int) or train[key] < 1:
            raise TrainError(f"train.{key} must be a positive integer, got {train[key]!r}")
    if cfg["pruning"]["schedule"] not in pruning.SCHEDULES:
        raise TrainError(f"pruning.schedule must be one of {', '.join(pruning.SCHEDULES)}; "
                         f"got {cfg['pruning']['schedule']!r}")
    if not isinstance(train["scale_batch_with_replicas"], bool):
        raise TrainError(f"train.scale_batch_with_replicas must be true or false, got "
                         f"{train['scale_batch_with_replicas']!r}")
    if not float(train["learning_rate"]) > 0:
        raise TrainError(f"train.learning_rate must be positive, got {train['learning_rate']!r}")
