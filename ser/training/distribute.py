"""One training over several devices: ``tf.distribute`` (``training.distribute``).

``training.distribute = "mirrored"`` trains each model of a run (a fold's, the final one)
with ``tf.distribute.MirroredStrategy`` over every GPU of the machine (its CPU without one);
``"multi_worker"`` with ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines that
``TF_CONFIG`` names (the same ``ser train`` command started on each, with its own
``TF_CONFIG`` ``task.index``; every worker writes the run folder, so give each its own
``--out``, or a shared one only for the chief, index 0). ``"none"`` (the default) trains on
TensorFlow's default device.

With ``R`` replicas, ``training.batch_size`` is the batch of each replica: the global batch
is ``batch_size x R`` crops, and the peak learning rate is scaled linearly to
``learning_rate x R`` (Goyal et al., 2017, "Accurate, Large Minibatch SGD"), so the
warm-up of one epoch and the cosine decay keep their shape over ``R`` times fewer steps.
Each global batch is the one a single device would draw with that batch size (the same
crops, in the same order), split into ``R`` consecutive slices, one per replica; batch
normalisation uses the statistics of the global batch (``synchronized``), so a run over
``R`` devices matches one device with batch ``batch_size x R`` and the scaled learning
rate up to floating-point differences (tested with 2 logical CPU devices).
"""

from __future__ import annotations

from ser.errors import ConfigError

#: The values of ``training.distribute``.
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


def make_strategy(kind: str):
    """The ``tf.distribute`` strategy of ``kind`` (one of :data:`DISTRIBUTIONS`); ``"none"``:
    TensorFlow's default strategy (one device)."""
    import tensorflow as tf

    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"training.distribute must be one of {list(DISTRIBUTIONS)}. Received: {kind!r}")
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def synchronize_batch_norm(model) -> None:
    """Make every batch normalisation of ``model`` use global-batch statistics across replicas."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def distributed_step(model, strategy):
    """``step(x, mask, targets, weights) -> logs``: Keras's ``model.train_step`` on one
    global batch, split into equal consecutive slices over the replicas of ``strategy``
    (``strategy.run``; Keras scales each replica's loss and the optimiser sums the gradients).
    The global batch must be a multiple of the replicas. Traced once."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def one(batch):
        x, mask, targets, weights = batch
        return model.train_step(((x, mask), targets, weights))

    @tf.function(reduce_retracing=True)
    def step(x, mask, targets, weights):
        def part(ctx):
            i = ctx.replica_id_in_sync_group
            n = tf.shape(x)[0] // replicas
            return tuple(t[i * n : (i + 1) * n] for t in (x, mask, targets, weights))

        logs = strategy.run(one, args=(strategy.experimental_distribute_values_from_function(part),))
        # each replica's running mean over its equal share of every batch: their mean is the global one
        return {name: strategy.reduce("MEAN", v, axis=None) for name, v in logs.items()}

    return step
