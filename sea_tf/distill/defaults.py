"""Defaults of ``sea-tf distill`` (the config schema): spec §3.4, with the PCA job's values.

Every key here may be set from ``configs/distill/*.yaml`` or ``--set``; unknown keys are errors.
"""
DEFAULTS = {
    "shards": [],            # teacher-shard directories (`sea-tf teacher-embed` outputs)
    "targets": None,         # reduced-target directory (`sea-tf reduce apply` output)
    "reducer": None,         # reducer directory; default: the one named in the targets card
    "out": "runs/distill",   # run directory (resumed when it already holds this config)
    "seed": 20180216,
    "progress": True,
    "student": {
        "preset": "sea-64",  # sea-64 | sea-128 | sea-256 | sea-512 | edgel3-sparse
        # build_student overrides; null keeps the preset's value.
        "overrides": {"filters": None, "embedding_size": None, "sample_rate": None, "n_mels": None,
                      "n_dft": None, "n_hop": None, "fmin": None, "fmax": None, "frontend": None,
                      "embedding_bn_relu": None},
        "init": None,        # warm start: a saved student .keras, a published .h5 or edgel3/sea-64
    },
    "data": {
        "valid_fraction": 0.1,    # share of SOURCE FILES held out for validation
        "shuffle_buffer": 4096,   # windows in the shuffle buffer (across shards)
        "block_rows": 256,        # contiguous rows read from one shard at a time
        "cycle_length": 4,        # shards read in parallel (interleave)
        "check_rows": 2,          # rows per shard re-reduced to check target/audio alignment
    },
    "train": {
        "epochs": 300,
        "steps_per_epoch": 4096,  # null: one pass over the training windows
        "validation_steps": 1024, # null: every held-out window
        "batch_size": 64,         # per replica; the global batch is this × replicas
        "learning_rate": 1.0e-4,
        "early_stopping": {"patience": 10, "min_delta": 1.0e-4},
        "reduce_lr": {"factor": 0.1, "patience": 5, "min_delta": 1.0e-4},
        "time_budget_s": None,    # stop after this many seconds of training (demo); null: no limit
        "calibrate_bn": 0,        # new runs: first set BN moving statistics from this many training
                                  # windows (0: keep Keras' initial 0/1, as the seed did)
    },
    "pruning": {
        "enabled": False,
        "target_sparsity": 0.9,   # final fraction of zero weights in each pruned layer
        "initial_sparsity": 0.0,
        "begin_step": 0,
        "end_fraction": 0.5,      # sparsity reaches its target after this share of the planned steps
        "frequency": 100,         # steps between mask updates
        "per_layer": [],          # [{layer: conv2d_5, sparsity: 0.8}, ...] overriding target_sparsity
        "exclude": ["conv2d_1"],  # never pruned (the front end is never pruned)
    },
    "qat": {
        "enabled": False,         # quantization-aware fine-tune after distillation
        "epochs": 2,
        "learning_rate": 1.0e-5,
    },
    "strategy": {
        "kind": "auto",           # auto | default | mirrored | multiworker
        "cpu_devices": 0,         # >1: split the CPU into N logical devices (testing MirroredStrategy)
        "mixed_precision": False, # mixed_float16 compute, float32 variables, loss and outputs
    },
    "evaluate": {
        "max_rows": None,         # held-out windows evaluated after training; null: all
        "downstream": True,       # labelled shards: held-out accuracy of the classify stage's MLP
    },
}

#: Keys that may change between a run and its resumption (they do not change what is learnt).
RESUMABLE_CHANGES = ("progress", "out", "train.epochs", "train.time_budget_s", "evaluate.max_rows",
                     "evaluate.downstream", "data.cycle_length", "qat.enabled", "qat.epochs", "qat.learning_rate")
