"""The L3 convolutional body shared by the teacher and the SEA/EdgeL3 students (docs/PROTOCOL.md §1.1, §2.1, §2.4).

Input BN → 3 blocks of (conv → BN → ReLU) × 2 → 2×2 max pool → block 4 (conv → BN → ReLU →
``audio_embedding_layer``) → head. The head differs:

- teacher: ``audio_embedding_layer`` is linear, then MaxPool(P, 'same') → Flatten (docs/PROTOCOL.md §1.1);
- SEA students: BN + ReLU after ``audio_embedding_layer``, then a global 'valid' max pool →
  Flatten, so embeddings are ≥ 0 (docs/PROTOCOL.md §2.1). That is the ``published`` head; the
  other :data:`HEADS` let the student reach centred (PCA) targets, about half of whose values are
  negative: ``linear`` ends at ``audio_embedding_layer`` (no BN, no ReLU, as the teacher), ``projection``
  keeps the published head and adds a final linear layer (a 1×1 convolution on the pooled 1×1 map).
  Keeping the BN and dropping only the ReLU measured worse than both (docs/RESULTS.md, issue #24);
- EdgeL3 sparse: teacher body, global 'valid' max pool (docs/PROTOCOL.md §2.4).

Layer names follow the published Keras files (``conv2d_N``, ``batch_normalization_N``,
``audio_embedding_layer``) so that weight files read by order are easy to check by eye.
"""
from collections.abc import Sequence

from sea_tf.backend import keras
from sea_tf.errors import ModelError

CONV_L2 = 1e-5
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

#: Student heads after ``audio_embedding_layer`` (when it has BN at all, see ``embedding_bn_relu``).
HEADS = {
    "published": "BN + ReLU + global max pool, as the paper and edgel3 (embeddings >= 0)",
    "linear": "global max pool of audio_embedding_layer, no BN, no ReLU (embeddings of either sign)",
    "projection": "the published head, then a linear Dense layer of the embedding width",
}


def _conv(filters: int, name: str, seed: int) -> keras.layers.Conv2D:
    # he_normal-style initialisation with a per-layer seed: the model is a pure function of the seed.
    init = keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=seed)
    return keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer=init,
                               kernel_regularizer=keras.regularizers.L2(CONV_L2), name=name)


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def build_l3_network(input_shape: Sequence[int], filters: Sequence[int], *, embedding_bn_relu: bool,
                     head: str = "published", pool_size: Sequence[int] | None = None, pool_padding: str = "valid",
                     seed: int = 0, name: str = "network") -> keras.Model:
    """The L3 body from front-end image to embedding.

    Parameters
    ----------
    input_shape : tuple of int
        ``(F, T, 1)``, the front end's output.
    filters : sequence of 4 int
        Filters of blocks 1–4; block 4's width is the embedding size.
    embedding_bn_relu : bool
        BN + ReLU after ``audio_embedding_layer`` (SEA students) or neither (teacher, EdgeL3 sparse:
        a linear head without BN; ``head`` is then ignored).
    head : str
        One of :data:`HEADS` (SEA students): ``published`` (BN + ReLU), ``linear`` (neither) or
        ``projection`` (published, then a Dense layer named ``embedding_projection``).
    pool_size : tuple of 2 int, optional
        Head max-pool size; None pools over the whole final map.
    pool_padding : {"valid", "same"}
    seed : int
        Seed of the convolution initialisers.
    name : str

    Returns
    -------
    keras.Model
        ``[B, F, T, 1]`` → ``[B, D]`` where ``D = filters[3] * pooled cells``.
    """
    filters = [int(f) for f in filters]
    if head not in HEADS:
        raise ModelError(f"unknown student head {head!r}; known: {', '.join(HEADS)}")
    if len(filters) != 4 or min(filters) <= 0:
        raise ModelError(f"filters must be 4 positive integers (blocks 1-4), got {filters}")
    inputs = keras.Input(shape=tuple(input_shape), name="frontend_features")
    n_conv, n_bn, n_relu = 0, 1, 0
    x = _bn("batch_normalization_1")(inputs)
    for block, width in enumerate(filters):
        for position in range(2):
            last = block == 3 and position == 1
            n_conv += 1
            conv_name = "audio_embedding_layer" if last else f"conv2d_{n_conv}"
            x = _conv(width, conv_name, seed + n_conv)(x)
            if last and (not embedding_bn_relu or head == "linear"):
                break
            n_bn += 1
            n_relu += 1
            x = _bn(f"batch_normalization_{n_bn}")(x)
            x = keras.layers.Activation("relu", name=f"activation_{n_relu}")(x)
        if block < 3:
            x = keras.layers.MaxPooling2D(2, strides=2, padding="valid", name=f"max_pooling2d_{block + 1}")(x)
    spatial = tuple(int(d) for d in x.shape[1:3])
    if min(spatial) < 1:
        raise ModelError(f"front-end image {tuple(input_shape)} is too small for 3 max pools")
    pool = tuple(pool_size) if pool_size else spatial
    x = keras.layers.MaxPooling2D(pool, padding=pool_padding, name="max_pooling2d_4")(x)
    outputs = keras.layers.Flatten(name="flatten_1")(x)
    if head == "projection" and embedding_bn_relu:
        init = keras.initializers.GlorotUniform(seed=seed + n_conv + 1)
        outputs = keras.layers.Dense(filters[3], kernel_initializer=init, name="embedding_projection")(outputs)
    return keras.Model(inputs, outputs, name=name)


def network_macs(network: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of ``network`` for one example (Conv2D and Dense).

    BN, ReLU and pooling are not counted: BN folds into the preceding convolution at export
    time and the others are comparisons.
    """
    total = 0
    for layer in network.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, out_ch = layer.output_shape
            kh, kw, in_ch, _ = layer.kernel.shape
            total += height * width * out_ch * kh * kw * in_ch
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
        elif isinstance(layer, keras.Model):
            total += network_macs(layer)
    return int(total)
