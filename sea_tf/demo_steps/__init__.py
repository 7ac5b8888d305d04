"""One module per pipeline stage, each with ``run(ctx) -> StepReport``; see :mod:`sea_tf.demo`."""
