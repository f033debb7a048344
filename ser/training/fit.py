"""Training one model: Keras's training step and callbacks, over the recipe's crops.

A recipe trains one model per fold (and per ensemble member) and a final one, all of the same
architecture. :class:`Trainer` builds and compiles that model once and traces Keras's own
``train_step`` once (``tf.function``); each training then resets its weights, feature
statistics, optimiser state and learning-rate schedule.

:func:`fit_epochs` drives the epochs as ``model.fit`` does (``reset_metrics``, the step per
batch, ``keras.callbacks.CallbackList``), but feeds each batch as NumPy arrays straight to the
traced step, without ``fit``'s ``tf.data`` adapter for Python data, whose per-batch overhead
is large beside a small CNN's step on a CPU (see ``docs/history.md``). The callbacks of one training, in the order they run at the
end of each epoch:

- :class:`ValidationScores` scores the whole validation utterances (UA, WA, loss) into ``logs``;
- :class:`BestEpoch` keeps the best epoch's weights (best UA, ties broken by lower loss) and
  stops after ``training.patience`` epochs without one (0: never);
- ``keras.callbacks.TensorBoard`` writes the curves;
- :class:`EpochLog` prints the epoch's line on stderr;
- ``keras.callbacks.History`` keeps the curve.
"""

from __future__ import annotations

import time

import numpy as np

from ser import interrupts
from ser.augment import mixup
from ser.data import CropBatches
from ser.evaluation import scores
from ser.io import log
from ser.model import build_model, stamped_info
from ser.normalization import feature_stats
from ser.runtime import log_softmax, predict_logits
from ser.store import take
from ser.training.distribute import distributed_step, make_strategy, synchronize_batch_norm
from ser.training.init import load_init, transfer_weights


def warmup_cosine(peak: float):
    """Learning rate: linear warm-up from 0 to ``peak``, then cosine decay to 0.

    The same curve as ``keras.optimizers.schedules.CosineDecay(0.0, decay_steps,
    warmup_target=peak, warmup_steps=warmup)``, but its two lengths are variables, set with
    ``schedule.set_lengths(warmup, decay)``: a training step traced once reads them at run
    time, so one :class:`Trainer` serves folds of different sizes.
    """
    import keras
    from keras import ops

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, peak):
            self.peak = float(peak)
            self.warmup = keras.Variable(1.0, trainable=False, name="warmup_steps")
            self.decay = keras.Variable(1.0, trainable=False, name="decay_steps")

        def set_lengths(self, warmup: int, decay: int):
            self.warmup.assign(float(max(warmup, 1)))
            self.decay.assign(float(max(decay, 1)))

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warmup = ops.convert_to_tensor(self.warmup)
            decay = ops.convert_to_tensor(self.decay)
            rising = self.peak * step / warmup
            done = ops.minimum(ops.maximum(step - warmup, 0.0), decay) / decay
            falling = self.peak * 0.5 * (1.0 + ops.cos(np.pi * done))
            return ops.where(step < warmup, rising, falling)

        def get_config(self):
            return {"peak": self.peak}

    return WarmupCosine(peak)


def _traced_step(model):
    """``step(x, mask, targets, weights) -> logs``: Keras's ``model.train_step`` on one batch
    (the compiled loss with sample weights, regularisation, the optimiser update, the running
    ``loss``), traced once as ``model.fit`` traces it."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(x, mask, targets, weights):
        return model.train_step(((x, mask), targets, weights))

    return step


class Trainer:
    """One compiled model, reused for every model of a run.

    Building and tracing a model costs seconds each time (a large share of a small corpus's
    training), so the trainer builds and compiles once and traces its training step once; :meth:`start` then puts back the initial weights, the fold's feature statistics, a
    fresh optimiser state and the learning-rate schedule's lengths. A model trained this way
    gets the same weights as a freshly built one (tested). With ``training.init``, every
    model starts from that model's weights (:func:`ser.training.init.transfer_weights`).

    Parameters
    ----------
    labels : list of str
    recipe : dict
        The resolved recipe (``frontend``, ``model``, ``training``).
    strategy : tf.distribute.Strategy or None
        The devices of each step (default: ``training.distribute``,
        :func:`ser.training.distribute.make_strategy`).
    """

    def __init__(self, labels, recipe: dict, *, strategy=None):
        import keras

        frontend, mcfg, tcfg = recipe["frontend"], recipe["model"], recipe["training"]
        init = load_init(tcfg.init) if tcfg.init else None  # fine-tuning (ser.training.init)

        def build(seed):
            model = build_model(labels, frontend.n_mels, mcfg, frontend=frontend.to_dict(), seed=seed)
            if init is not None:
                transfer_weights(model, init, labels)
            return model

        self._build = build
        self.strategy = strategy or make_strategy(tcfg.distribute)
        #: Replicas of each step: the global batch is ``batch_size`` x this (ser.training.distribute).
        self.replicas = int(self.strategy.num_replicas_in_sync)
        with self.strategy.scope():
            keras.utils.set_random_seed(tcfg.seed)
            self.model = self._build(tcfg.seed)
            self.seed = tcfg.seed
            self.initial = {self.seed: [np.array(v.numpy()) for v in self.model.variables]}
            self.schedule = warmup_cosine(tcfg.learning_rate * self.replicas)  # linear scaling
            self.optimizer = keras.optimizers.AdamW(self.schedule, weight_decay=tcfg.weight_decay)
            self.model.compile(
                optimizer=self.optimizer,
                loss=keras.losses.CategoricalCrossentropy(
                    from_logits=True, label_smoothing=tcfg.label_smoothing
                ),
                jit_compile=False,  # the same step on every device, and no XLA compile per run
            )
            self.optimizer.build(self.model.trainable_variables)
        if tcfg.distribute == "none":
            self.step = _traced_step(self.model)
        else:
            synchronize_batch_norm(self.model)
            self.step = distributed_step(self.model, self.strategy)

    def initial_weights(self, seed: int) -> list:
        """The weights a model freshly built with ``seed`` starts from (built once per seed)."""
        if seed not in self.initial:
            self.initial[seed] = [np.array(v.numpy()) for v in self._build(seed).variables]
        return self.initial[seed]

    def start(
        self, mean, variance, *, steps_per_epoch: int, epochs: int, info: dict, seed: int | None = None
    ):
        """Reset the model for a new training run (of ``seed``, default the recipe's) and return it."""
        import keras

        seed = self.seed if seed is None else int(seed)
        initial = self.initial_weights(seed)
        keras.utils.set_random_seed(seed)
        for variable, value in zip(self.model.variables, initial, strict=True):
            variable.assign(value)
        self.model.get_layer("normalization").set_statistics(mean, variance)
        self.model.get_layer("ser_metadata").info = stamped_info(info)
        for variable in self.optimizer.variables:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
        self.schedule.set_lengths(steps_per_epoch, steps_per_epoch * epochs - steps_per_epoch)
        return self.model


def class_weights(train_labels, n_classes: int, kind: str) -> np.ndarray:
    """Per-class loss weights ``[shape=(n_classes,)]``: ``"balanced"`` (inverse frequency,
    averaging 1 over the training files; 0 for a class absent from them) or all ones."""
    if kind != "balanced":
        return np.ones(n_classes, dtype=np.float32)
    counts = np.bincount(train_labels, minlength=n_classes).astype(float)
    return np.where(counts > 0, counts.sum() / np.maximum(n_classes * counts, 1), 0.0).astype(np.float32)


def crop_batches(features, labels, recipe: dict, *, seed: int, copies=None, replicas: int = 1) -> CropBatches:
    """The recipe's training crops (``training.crop_seconds``, rounded up to a multiple of
    the model's time stride) of ``features``, with its SpecAugment (:class:`ser.data.CropBatches`);
    ``training.batch_size`` x ``replicas`` per batch (:mod:`ser.training.distribute`)."""
    frontend, mcfg, tcfg = recipe["frontend"], recipe["model"], recipe["training"]
    crop = int(round(tcfg.crop_seconds * frontend.frame_rate))
    crop = int(np.ceil(crop / mcfg.time_stride) * mcfg.time_stride)
    return CropBatches(
        features,
        labels,
        crop,
        tcfg.batch_size * replicas,
        augment=tcfg.spec_augment,
        seed=seed,
        mask_widths=(tcfg.freq_mask_width, tcfg.time_mask_width),
        copies=copies,
    )


def crop_epoch(batches: CropBatches, n_classes: int, class_w, mix: float, mix_rng):
    """One epoch of ``batches`` as ``(x, mask, one-hot targets, weights)`` NumPy batches.

    The weights are each crop's class weight; with ``mix > 0`` crops, targets and weights are
    mixed up (:func:`ser.augment.mixup`), drawing from ``mix_rng``.
    """
    eye = np.eye(n_classes, dtype=np.float32)
    for (x, m), y in batches.epoch():
        target, weight = eye[y], class_w[y]
        if mix > 0:
            x, m, target, weight = mixup(x, m, target, weight, mix_rng, mix)
        yield x, m, target, weight


def fit_epochs(trainer, epochs: int, make_epoch, callbacks: list) -> dict:
    """Train ``trainer.model`` for up to ``epochs`` epochs, as ``model.fit`` would.

    Parameters
    ----------
    trainer : Trainer
        Its traced ``step(x, mask, targets, weights) -> logs`` is Keras's ``train_step``.
    epochs : int
    make_epoch : callable
        ``make_epoch() -> iterable of (x, mask, targets, weights)``, one epoch's batches.
    callbacks : list of keras.callbacks.Callback
        Run through a ``keras.callbacks.CallbackList``; one may set ``model.stop_training``.

    Returns
    -------
    dict
        ``History.history``: each epoch's logs, by name.
    """
    import keras

    model = trainer.model
    history = keras.callbacks.History()
    hooks = keras.callbacks.CallbackList([*callbacks, history], model=model, epochs=epochs, verbose=0)
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(epochs):
        model.reset_metrics()
        hooks.on_epoch_begin(epoch)
        for i, (x, m, target, weight) in enumerate(make_epoch()):
            hooks.on_train_batch_begin(i)
            logs = trainer.step(x, m, target, weight)
            hooks.on_train_batch_end(i)
        hooks.on_epoch_end(epoch, {name: float(value) for name, value in logs.items()})
        if model.stop_training:
            break
    hooks.on_train_end()
    return history.history


def training_callbacks(val_features, val_labels, n_classes: int, recipe: dict, *, log_dir, prefix):
    """The callbacks of one training (see the module docstring), in the order they run; the
    :class:`BestEpoch` is the third."""
    import keras

    Callback = keras.callbacks.Callback
    tcfg = recipe["training"]

    class EpochStart(Callback):
        """Times each epoch; stops at a Ctrl-C that came during a step (ser.interrupts)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_train_batch_end(self, batch, logs=None):
            interrupts.check()

    class ValidationScores(Callback):
        """``val_loss``, ``val_ua``, ``val_wa`` of the whole validation utterances, into ``logs``."""

        def on_epoch_end(self, epoch, logs=None):
            logits = predict_logits(
                self.model, val_features, batch_size=tcfg.batch_size, multiple=recipe["model"].time_stride
            )
            val = scores(val_labels, logits.argmax(1), n_classes)
            val_loss = float(-log_softmax(logits)[np.arange(len(val_labels)), val_labels].mean())
            logs.update(val_loss=val_loss, val_ua=val["ua"], val_wa=val["wa"])

    class BestEpoch(Callback):
        """Keeps the best epoch (``val_ua``, then lower ``val_loss``); stops after ``patience``
        epochs without a better one (0: never); puts its weights back with ``keep="best"``."""

        def on_train_begin(self, logs=None):
            self.ua, self.loss, self.epoch = -1.0, np.inf, 0
            self.weights = self.model.get_weights()

        def on_epoch_end(self, epoch, logs=None):
            ua, loss = logs["val_ua"], logs["val_loss"]
            if ua > self.ua + 1e-9 or (abs(ua - self.ua) <= 1e-9 and loss < self.loss):
                self.ua, self.loss, self.epoch = ua, loss, epoch + 1
                self.weights = self.model.get_weights()
            if tcfg.patience and epoch + 1 - self.epoch >= tcfg.patience:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if tcfg.keep == "best":
                self.model.set_weights(self.weights)

    class EpochLog(Callback):
        def on_epoch_end(self, epoch, logs=None):
            log(
                f"{prefix}epoch {epoch + 1:2d}/{tcfg.epochs}  loss {logs['loss']:.3f}  "
                f"val loss {logs['val_loss']:.3f}  val UA {logs['val_ua']:.3f}  "
                f"(best {best.ua:.3f} @ {best.epoch})  {time.time() - start.t0:.0f}s"
            )

    start, best = EpochStart(), BestEpoch()
    board = []
    if log_dir:
        board = [keras.callbacks.TensorBoard(str(log_dir), write_graph=False, profile_batch=0)]
    return [start, ValidationScores(), best, *board, EpochLog()]


def train_model(
    train_features,
    train_labels,
    val_features,
    val_labels,
    labels,
    recipe: dict,
    *,
    info: dict | None = None,
    log_dir: str | None = None,
    prefix: str = "",
    trainer: Trainer | None = None,
    seed: int | None = None,
    train_copies: list | None = None,
):
    """Train one model; early stopping and best-epoch choice use the validation set only.

    Parameters
    ----------
    train_features, val_features : sequence of np.ndarray [shape=(frames_i, n_mels)]
        Lists, or :class:`ser.store.FeatureView` (read a batch at a time: memory flat in size).
    train_labels, val_labels : np.ndarray of int
    labels : list of str
    recipe : dict
        The resolved recipe.
    info : dict or None
        Metadata for the model's ``ser_metadata`` layer (the head, normalisation, adapted
        blocks and seed are added).
    log_dir : str or None
        TensorBoard folder (``None``: no curves).
    prefix : str
        Start of each epoch's log line (e.g. ``"fold 2/6 "``).
    trainer : Trainer or None
        Reuse this trainer's compiled model (a run of many folds); ``None`` builds one.
        The returned model is then the trainer's, overwritten by its next ``start``.
    seed : int or None
        Seed of the initial weights, crops, augmentation and dropout (default the recipe's
        ``training.seed``).
    train_copies : sequence of tuple of np.ndarray (or a :class:`ser.store.CopiesView`), or None
        Each training utterance's copies at ``training.speeds`` (:func:`ser.data.speed_copies`),
        which its crops are also cut from; ``None``: the utterances alone.

    Returns
    -------
    model : keras.Model
        With the weights of the best validation epoch (by UA, then loss), or of the last
        epoch with ``training.keep = "last"``.
    history : dict
        ``{"best_epoch", "epochs_run", "best_val_ua", "curve": [{"epoch", "loss", "val_loss",
        "val_ua", "val_wa"}, ...]}``; ``best_epoch`` is the epoch whose weights were kept.
    """
    mcfg, tcfg = recipe["model"], recipe["training"]
    k = len(labels)
    trainer = trainer or Trainer(labels, recipe)
    seed = tcfg.seed if seed is None else int(seed)
    batches = crop_batches(
        train_features, train_labels, recipe, seed=seed, copies=train_copies, replicas=trainer.replicas
    )
    mean, var = feature_stats(train_features)
    model_info = {
        **(info or {}),
        "head": mcfg.head,
        "normalization": recipe["features"]["normalization"],
        "adapt_blocks": list(mcfg.adapt_blocks),
        "seed": seed,
    }
    model = trainer.start(
        mean, var, steps_per_epoch=len(batches), epochs=tcfg.epochs, info=model_info, seed=seed
    )
    weights = class_weights(train_labels, k, tcfg.class_weight)
    mix_rng = np.random.default_rng([seed, 1])
    callbacks = training_callbacks(
        val_features, np.asarray(val_labels), k, recipe, log_dir=log_dir, prefix=prefix
    )
    h = fit_epochs(
        trainer, tcfg.epochs, lambda: crop_epoch(batches, k, weights, tcfg.mixup, mix_rng), callbacks
    )
    best = callbacks[2]
    curve = [
        {"epoch": i + 1, "loss": h["loss"][i], "val_loss": h["val_loss"][i], "val_ua": h["val_ua"][i]}
        | {"val_wa": h["val_wa"][i]}
        for i in range(len(h["loss"]))
    ]
    return model, {
        "best_epoch": best.epoch if tcfg.keep == "best" else len(curve),
        "epochs_run": len(curve),
        "best_val_ua": best.ua,
        "curve": curve,
    }


def train_split(split, data, labels, recipe, *, info, board, prefix: str, trainer):
    """:func:`train_model` on one member's split of the prepared corpus ``data``
    (:class:`ser.training.prepare.Prepared`); TensorBoard in ``board`` (``board/member_J`` for
    ensembles). Only the training files' speed copies are cut into crops."""
    members = recipe["training"].members
    copies = data.copies
    return train_model(
        take(data.features, split.train),
        data.y[split.train],
        take(data.features, split.validation),
        data.y[split.validation],
        labels,
        recipe,
        info=info,
        log_dir=None if board is None else str(board / f"member_{split.member}" if members > 1 else board),
        prefix=prefix + (f"member {split.member}/{members} " if members > 1 else ""),
        trainer=trainer,
        seed=split.seed,
        train_copies=None if copies is None else take(copies, split.train),
    )
