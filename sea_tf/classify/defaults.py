"""Default settings of the downstream stage: the packaged ``configs/classify/defaults.yaml``.

Its ``us8k`` section holds the feature and classifier settings every downstream command shares
(the published protocol, docs/PROTOCOL.md). Kept free of TensorFlow imports so that ``sea-tf --help``
stays fast.
"""
from sea_tf.presets import load_defaults

_BENCH = load_defaults("classify/us8k")

FEATURES = _BENCH["features"]
CLASSIFIER = _BENCH["classifier"]
MLP = CLASSIFIER["mlp"]
SVM = CLASSIFIER["svm"]
