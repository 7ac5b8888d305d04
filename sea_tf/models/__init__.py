"""The model zoo: the L3 teacher, the SEA / EdgeL3 students, published-weight loading, the resolver.

Everything a later stage needs::

    from sea_tf.models import SeaModel, load_model, build_student, build_teacher
"""
from pathlib import Path

from sea_tf.models.builders import (DEFAULT_SEED, PRESETS, STUDENT_PRESETS, TEACHER_PRESETS, build_preset,
                                    build_student, build_teacher)
from sea_tf.models.calibrate import calibrate_batchnorm
from sea_tf.models.seamodel import SeaModel

__all__ = ["SeaModel", "load_model", "build_student", "build_teacher", "build_preset", "calibrate_batchnorm",
           "PRESETS", "STUDENT_PRESETS", "TEACHER_PRESETS", "DEFAULT_SEED"]


def load_model(spec: str | Path | SeaModel | None = None, *, input_repr: str | None = None,
               embedding_size: int | None = None, frontend: str | None = None, dft: str = "rfft",
               seed: int = DEFAULT_SEED) -> SeaModel:
    """Resolve a preset name, catalogue name, weight file, saved model or SeaModel (None: the published
    SEA-64 from the weights cache); see :mod:`sea_tf.models.resolve`."""
    from sea_tf.models.resolve import load_model as _load
    return _load(spec, input_repr=input_repr, embedding_size=embedding_size, frontend=frontend, dft=dft, seed=seed)
