"""Default settings of the downstream stage (the schema of ``configs/classify/*.yaml``).

Kept free of TensorFlow imports so that ``sea-tf --help`` stays fast. Values follow the published
protocol (spec §4.1): hop 0.1 s, MLP 512-128, L2 1e-5, Adam 1e-4, batch 32, 150 epochs, patience 20.
"""

FEATURES = {
    "hop_size": 0.1,          # seconds between 1-s windows
    "framing": "centered",    # centered | uncentered (openl3/edgel3 center=False) | l3e (spec §3.5)
    "cache_dir": None,        # default: OUT/cache
    "max_failed_fraction": 0.05,
}

MLP = {
    "hidden": [512, 128],
    "l2": 1.0e-5,
    "learning_rate": 1.0e-4,
    "batch_size": 32,
    "epochs": 150,
    "patience": 20,
}

SVM = {
    "C": 1.0,
    "C_grid": [],             # e.g. [0.1, 1, 10, 100, 1000]: choose C on the validation fold
    "tol": 1.0e-5,
    "max_train_frames": 0,    # > 0: subsample training frames (an RBF SVM is quadratic in them)
}

CLASSIFIER = {"type": "mlp", "mlp": MLP, "svm": SVM}
