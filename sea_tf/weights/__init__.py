"""Published openl3/edgel3 weights on demand: catalogue, verified local cache, fetch and import.

- :mod:`sea_tf.weights.catalogue` — the published files and the names users type;
- :mod:`sea_tf.weights.cache` — ``$SEA_TF_HOME/weights``: :func:`resolve_name`, :func:`is_cached`;
- :mod:`sea_tf.weights.fetch` — download (``sea-tf models fetch``);
- :mod:`sea_tf.weights.importer` — files from elsewhere (``sea-tf models import``).

Library calls never download: a model resolver calls :func:`resolve_name`, which either returns a
verified cached path or raises a one-line :class:`~sea_tf.errors.WeightsError` saying how to fetch
or import the file.
"""
from sea_tf.weights.cache import is_cached, resolve_name
from sea_tf.weights.catalogue import CATALOGUE, is_catalogue_name, lookup

__all__ = ["CATALOGUE", "is_cached", "is_catalogue_name", "lookup", "resolve_name"]
