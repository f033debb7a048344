"""Train and evaluate a recipe: speaker-independent folds, WA/UA, a final model; resumable.

``run_recipe`` is what ``ser train`` calls. Its output folder holds:

- ``run.json``: the resolved recipe (a rerun with other settings is refused);
- ``manifest.csv``: the corpus as loaded;
- ``folds/fold_NN/result.json`` + ``predictions.csv`` (each test file's label, prediction and
  class probabilities ``p_<class>``): one per finished fold (a rerun skips them); and
  ``logits.npz``: the CNN's own test logits (``cnn``, and ``cnn_adapted`` when adapted), with
  the test files' manifest rows (``rows``), before any fusion, and, when the model fuses a
  functionals head, the same for the (first) model's validation speakers
  (``validation_rows``, ``validation_cnn``, ``validation_cnn_adapted``: they chose its fusion
  weights; an ensemble's are the mean of its members' choices), for analyses of a finished run;
- ``results.json``, ``results.md``, ``confusion.png``: the report, pooled over folds;
- ``model.keras``: a final model trained on all speakers, ready for ``ser classify``;
- ``tensorboard/``: training curves per fold.

Every artefact is written atomically, so a crash (even ``kill -9``) never leaves a truncated
file, and rerunning the same command continues where it stopped.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ser import __version__, interrupts
from ser.adaptation import speaker_adapted_logits
from ser.augment import mixup
from ser.constants import MIN_ADAPTATION_FILES
from ser.corpora import describe_manifest, load_corpus
from ser.corpora.base import FIX_HINT, UNUSABLE, Report, absolute_root, detail_of, skipped_line, warn
from ser.data import CropBatches, UnusableAudio, extract_all, find_unusable, release_workers, speed_copies
from ser.errors import ConfigError, CorpusError
from ser.evaluation import plot_confusion, scores
from ser.functionals import FUNCTIONALS_VERSION
from ser.fusion import FUSION_WEIGHT, FunctionalsHead, choose_fusion_weight, fuse, speaker_log_probabilities
from ser.io import atomic_path, ensure_folder, read_json, write_json, write_text
from ser.model import ModelConfig, build_model, ensemble_model
from ser.normalization import feature_stats, normalize
from ser.protocol import describe_protocol, fold_splits, make_folds, member_splits
from ser.recipe import TrainingConfig, load_recipe, recipe_to_dict
from ser.runtime import predict_logits, softmax
from ser.workers import run_in_workers, threads_per_worker, worker_count


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_step_function(model, optimizer, loss_fn):
    """``step(x, mask, targets, weights) -> loss``: one optimiser update of ``model``.

    The loss is ``loss_fn`` (sample-weighted, averaged over the batch) plus the model's
    regularisation losses, as ``model.compile`` + ``train_on_batch`` would compute it. The step
    is one ``tf.function``: it traces in about half the time of ``train_on_batch`` (seconds per
    model, and a recipe trains one model per fold) and skips its per-call bookkeeping.
    """
    import tensorflow as tf

    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, m, y, w):
        with tf.GradientTape() as tape:
            logits = model([x, m], training=True)
            loss = loss_fn(y, logits, sample_weight=w)
            total = loss + tf.add_n(model.losses) if model.losses else loss
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return total

    step._omit_frequent_tracing_warning = True

    def run(x, m, y, w):
        return float(step(x, m, y, w))

    return run


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


class Trainer:
    """One model, optimiser and traced training step, reused for every model of a run.

    A recipe trains one model per fold and a final one, all with the same architecture.
    Building and tracing a model costs seconds each time (a large share of a small corpus's
    training), so the trainer builds and traces once; :meth:`start` then puts back the
    initial weights, the fold's feature statistics, a fresh optimiser state and the
    learning-rate schedule's lengths. A model trained this way gets the same weights as a
    freshly built one (tested).

    Parameters
    ----------
    labels : list of str
    recipe : dict
        The resolved recipe (``frontend``, ``model``, ``training``).
    """

    def __init__(self, labels, recipe: dict):
        import keras

        frontend, mcfg, tcfg = recipe["frontend"], recipe["model"], recipe["training"]
        self._build = lambda seed: build_model(
            labels, frontend.n_mels, mcfg, frontend=frontend.to_dict(), seed=seed
        )
        keras.utils.set_random_seed(tcfg.seed)
        self.model = self._build(tcfg.seed)
        self.seed = tcfg.seed
        self.initial = {self.seed: [np.array(v.numpy()) for v in self.model.variables]}
        self.schedule = warmup_cosine(tcfg.learning_rate)
        self.optimizer = keras.optimizers.AdamW(self.schedule, weight_decay=tcfg.weight_decay)
        self.step = train_step_function(
            self.model,
            self.optimizer,
            keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=tcfg.label_smoothing),
        )

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
        self.model.get_layer("ser_metadata").info = dict(info)
        for variable in self.optimizer.variables:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
        self.schedule.set_lengths(steps_per_epoch, steps_per_epoch * epochs - steps_per_epoch)
        return self.model


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
    train_copies : list of tuple of np.ndarray, or None
        Each training utterance's copies at ``training.speeds`` (:func:`ser.data.speed_copies`),
        which its crops are also cut from; ``None``: the utterances alone.
    seed : int or None
        Seed of the initial weights, crops, augmentation and dropout (default the recipe's
        ``training.seed``).
    trainer : Trainer or None
        Reuse this trainer's traced model (a run of many folds); ``None`` builds one.
        The returned model is then the trainer's, overwritten by its next ``start``.

    Returns
    -------
    model : keras.Model
        With the weights of the best validation epoch (by UA, then loss), or of the last
        epoch with ``training.keep = "last"``.
    history : dict
        ``{"best_epoch", "epochs_run", "best_val_ua", "curve": [...]}``; ``best_epoch`` is the
        epoch whose weights were kept.
    """

    frontend, mcfg, tcfg = recipe["frontend"], recipe["model"], recipe["training"]
    k = len(labels)
    if trainer is None:
        trainer = Trainer(labels, recipe)
    seed = tcfg.seed if seed is None else int(seed)
    mean, var = feature_stats(train_features)
    crop = int(round(tcfg.crop_seconds * frontend.frame_rate))
    crop = int(np.ceil(crop / mcfg.time_stride) * mcfg.time_stride)
    batches = CropBatches(
        train_features,
        train_labels,
        crop,
        tcfg.batch_size,
        augment=tcfg.spec_augment,
        seed=seed,
        mask_widths=(tcfg.freq_mask_width, tcfg.time_mask_width),
        copies=train_copies,
    )
    model = trainer.start(
        mean,
        var,
        steps_per_epoch=len(batches),
        epochs=tcfg.epochs,
        info={
            **(info or {}),
            "head": mcfg.head,
            "normalization": recipe["features"]["normalization"],
            "adapt_blocks": list(mcfg.adapt_blocks),
            "seed": seed,
        },
        seed=seed,
    )
    step = trainer.step
    counts = np.bincount(train_labels, minlength=k).astype(float)
    class_w = np.ones(k, dtype=np.float32)
    if tcfg.class_weight == "balanced":
        class_w = np.where(counts > 0, counts.sum() / np.maximum(k * counts, 1), 0.0).astype(np.float32)
    writer = None
    if log_dir:
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(log_dir))
    mix_rng = np.random.default_rng([seed, 1])
    best = {"ua": -1.0, "loss": np.inf, "epoch": 0, "weights": model.get_weights()}
    curve = []
    for epoch in range(1, tcfg.epochs + 1):
        t0 = time.time()
        losses = []
        for (x, m), y in batches.epoch():
            target, weight = np.eye(k, dtype=np.float32)[y], class_w[y]
            if tcfg.mixup > 0:
                x, m, target, weight = mixup(x, m, target, weight, mix_rng, tcfg.mixup)
            losses.append(step(x, m, target, weight))
            interrupts.check()  # a Ctrl-C that came during the step (ser.interrupts)
        train_loss = float(np.mean(losses))
        logits = predict_logits(model, val_features, batch_size=tcfg.batch_size, multiple=mcfg.time_stride)
        val = scores(val_labels, logits.argmax(1), k)
        logp = logits - logits.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        val_loss = float(-logp[np.arange(len(val_labels)), val_labels].mean())
        improved = val["ua"] > best["ua"] + 1e-9 or (
            abs(val["ua"] - best["ua"]) <= 1e-9 and val_loss < best["loss"]
        )
        if improved:
            best = {"ua": val["ua"], "loss": val_loss, "epoch": epoch, "weights": model.get_weights()}
        curve.append(
            {
                "epoch": epoch,
                "loss": train_loss,
                "val_loss": val_loss,
                "val_ua": val["ua"],
                "val_wa": val["wa"],
            }
        )
        if writer is not None:
            import tensorflow as tf

            with writer.as_default(step=epoch):
                tf.summary.scalar("train/loss", train_loss)
                tf.summary.scalar("validation/loss", val_loss)
                tf.summary.scalar("validation/ua", val["ua"])
                tf.summary.scalar("validation/wa", val["wa"])
            writer.flush()
        _log(
            f"{prefix}epoch {epoch:2d}/{tcfg.epochs}  loss {train_loss:.3f}  val loss {val_loss:.3f}  "
            f"val UA {val['ua']:.3f}  (best {best['ua']:.3f} @ {best['epoch']})  {time.time() - t0:.0f}s"
        )
        if tcfg.patience and epoch - best["epoch"] >= tcfg.patience:
            break
    if tcfg.keep == "best":
        model.set_weights(best["weights"])
    return model, {
        "best_epoch": best["epoch"] if tcfg.keep == "best" else len(curve),
        "epochs_run": len(curve),
        "best_val_ua": best["ua"],
        "curve": curve,
    }


def _parse_folds(folds, n: int) -> list[int]:
    if folds in (None, "all"):
        return list(range(1, n + 1))
    try:
        chosen = sorted({int(v) for v in str(folds).split(",") if v.strip()})
    except ValueError:
        raise ConfigError(
            f"--folds expects 'all' or a comma list of numbers, e.g. 1,3. Received: {folds!r}"
        ) from None
    bad = [f for f in chosen if not 1 <= f <= n]
    if bad or not chosen:
        raise ConfigError(f"--folds must be between 1 and {n}. Received: {folds!r}")
    return chosen


def _where(manifest, recipe: dict) -> str:
    """``"<corpus> at <root>"``, as the corpus's own messages name it (the root made absolute)."""
    return f"{recipe['corpus']['name']} at {manifest.attrs.get('root')}"


def _fold_splits(manifest, recipe: dict) -> list:
    """The recipe's folds of ``manifest`` (:func:`ser.protocol.fold_splits`); an error names
    the corpus, since the protocol may suit the full release and not this copy of it."""

    try:
        return fold_splits(manifest, recipe["protocol"])
    except ConfigError as exc:
        raise ConfigError(f"{_where(manifest, recipe)}: {exc}") from None


def _chosen_folds(manifest, recipe: dict, folds) -> list[int]:
    """The folds asked for (``--folds``; None or "all": every one), checked against the folds
    the recipe's protocol makes of ``manifest`` (which must be possible)."""
    return _parse_folds(folds, len(_fold_splits(manifest, recipe)))


def _load(recipe: dict, data_root, *, skip_bad: bool, decode: bool = True, progress: bool = True):
    """The recipe's corpus as a manifest (:func:`ser.corpora.load_corpus`).

    With ``decode``, every file whose header is fine is also decoded as training will decode
    it (:func:`ser.data.find_unusable`; about a millisecond per file), so that the files whose
    samples are unusable (NaN, silent, ...) are listed with the corpus's other problems: one
    run names every file to fix, and ``skip_bad`` leaves them all out at once.

    Feature extraction (:func:`_prepare`) decodes each file not in the cache once more. That
    second decode is kept on purpose: it is about 2% of an uncached extraction (RAVDESS on 2
    busy cores: 4.9 s of decoding, 304 s of features with functionals), while extracting here
    instead would compute (or, to write nothing, throw away) minutes of features before the
    folds are checked, and would need the cache folder beside ``--out`` before a run is known
    not to be refused.
    """
    from functools import partial

    rate = recipe["frontend"].sample_rate
    return load_corpus(
        recipe["corpus"]["name"],
        data_root,
        skip_bad=skip_bad,
        find_unusable=partial(find_unusable, sample_rate=rate, progress=progress) if decode else None,
        **recipe["corpus"]["options"],
    )


def _labels(manifest, recipe: dict, folds=None) -> list[str]:
    """The labels a run on ``manifest`` learns, in order, once it is checked that the run can
    be made: two classes or more, all among the recipe's, and the recipe's folds (and
    ``folds``, those asked for) possible. Checked before anything is written or computed, so
    that a refused run leaves nothing behind."""
    labels = list(manifest.attrs.get("classes") or sorted(manifest["label"].unique()))
    _require_two_classes(manifest, recipe)
    unknown = sorted(set(manifest["label"]) - set(labels))
    if unknown:
        raise ConfigError(f"manifest labels {unknown} are not among the recipe classes {labels}")
    _chosen_folds(manifest, recipe, folds)
    return labels


def _prepare(
    recipe: dict, manifest, *, skip_bad: bool, cache_dir, progress: bool, folds=None, n_jobs: int = -1
):
    """The (normalised) features of ``manifest`` (as :func:`_load` returns it).

    The run is checked first (:func:`_labels`), so a corpus the folds cannot be made from
    fails before any feature is computed.

    Returns ``(manifest, labels, features, y, seconds, functionals, copies)``; ``manifest``
    lacks the files whose audio turned out unusable only now (with ``skip_bad``);
    ``functionals`` (``(files, 1 + speeds, N)``: the functionals of :mod:`ser.functionals` of
    each file, then of its copies at ``model.functionals_speeds``) is None unless
    ``model.functionals`` is on; ``copies`` (each file's features played at
    ``training.speeds``, normalised as the file's own) is None unless ``training.speeds`` has
    any. ``n_jobs``: processes computing features (joblib; -1: one per core).
    """

    labels = _labels(manifest, recipe, folds)
    t0 = time.time()
    use_functionals = recipe["model"].functionals
    try:
        extracted = extract_all(
            manifest["path"].tolist(),
            recipe["frontend"],
            cache_dir=cache_dir,
            progress=progress,
            functionals=use_functionals,
            speeds=recipe["model"].functionals_speeds,
            n_jobs=n_jobs,
        )
    except UnusableAudio as exc:
        # files whose audio changed since :func:`_load` decoded them, or that a worker (which
        # does not decode) meets: reported together, and skipped with --skip-bad
        manifest, keep = _drop_unusable(manifest, exc.failures, recipe, skip_bad, folds)
        features, func = exc.results if use_functionals else (exc.results, None)
        features = [f for f, k in zip(features, keep, strict=True) if k]
        extracted = (features, func[keep]) if use_functionals else features
    features, functionals = extracted if use_functionals else (extracted, None)
    if functionals is not None and functionals.ndim == 2:
        functionals = functionals[:, None]  # (files, 1 + speeds, N): each file's own first
    copies = None
    speeds = recipe["training"].speeds
    if speeds:
        # the training files' copies are cut into crops (speed perturbation)
        try:
            copies = speed_copies(
                manifest["path"].tolist(),
                recipe["frontend"],
                speeds,
                cache_dir=cache_dir,
                progress=progress,
                n_jobs=n_jobs,
            )
        except UnusableAudio as exc:  # (a file whose features were cached and whose audio changed)
            manifest, keep = _drop_unusable(manifest, exc.failures, recipe, skip_bad, folds)
            copies = [c for c, k in zip(exc.results, keep, strict=True) if k]
            features = [f for f, k in zip(features, keep, strict=True) if k]
            functionals = None if functionals is None else functionals[keep]
    speakers = manifest["speaker"].astype(str).tolist()
    normalization = recipe["features"]["normalization"]
    if copies is not None and normalization != "global":
        # each speed of a speaker is normalised as another speaker, as the functionals head counts it
        per_speed = [
            normalize([c[j] for c in copies], [f"{s}\x1fspeed{v:g}" for s in speakers], normalization)
            for j, v in enumerate(speeds)
        ]
        copies = list(zip(*per_speed, strict=True))
    feature_seconds = time.time() - t0
    features = normalize(features, speakers, normalization)
    y = np.array([labels.index(label) for label in manifest["label"]], dtype=np.int32)
    return manifest, labels, features, y, feature_seconds, functionals, copies


def _require_two_classes(manifest, recipe: dict) -> None:
    labels = sorted(set(manifest["label"]))
    if len(labels) < 2:
        raise CorpusError(
            f"{_where(manifest, recipe)}: every usable utterance is labelled "
            f"{labels[0]!r}; expected at least 2 classes to train on"
        )


def _groups_text(groups, most: int = 8) -> str:
    """A fold's test speakers for a log line or table cell: all of them, or the first
    ``most`` and a count (one file per group, as without speakers, makes dozens)."""
    groups = list(groups)
    if len(groups) <= most:
        return ", ".join(groups)
    return f"{', '.join(groups[:most])} and {len(groups) - most} more"


def _drop_unusable(manifest, failures: dict, recipe: dict, skip_bad: bool, folds):
    """``(manifest, keep)``: the manifest without the files of ``failures`` (manifest row ->
    :class:`AudioError`, as :class:`ser.data.UnusableAudio` holds them) and the mask of the
    rows kept; or, unless ``skip_bad``, a :class:`CorpusError` naming them all. The folds
    asked for (``folds``, as :func:`_chosen_folds` takes them) must still be possible."""

    root = Path(manifest.attrs["root"])  # absolute, as the loader named it
    # a CSV (custom): paths are shown relative to its folder, as the loader does
    report = Report(recipe["corpus"]["name"], root, base=root.parent if root.is_file() else root)
    paths = manifest["path"].tolist()
    for i, error in failures.items():
        report.add(UNUSABLE, paths[i], detail_of(error, paths[i]))
    if not skip_bad:
        raise CorpusError(report.summary(FIX_HINT))
    keep = np.array([i not in failures for i in range(len(paths))])
    if not keep.any():
        raise CorpusError(report.summary("--skip-bad, but no usable utterance is left."))
    warn(report.summary(skipped_line(len(failures), int(keep.sum()))))
    attrs = dict(manifest.attrs)
    manifest = manifest[keep].reset_index(drop=True)
    manifest.attrs.update(attrs)
    lost = [c for c in attrs.get("classes") or () if c not in set(manifest["label"])]
    if lost:
        raise CorpusError(
            f"{_where(manifest, recipe)}: skipping the unusable files leaves no "
            f"utterance of {', '.join(lost)}; expected at least one per class"
        )
    _chosen_folds(manifest, recipe, folds)  # the folds must still be possible
    return manifest, keep


def check_corpus(
    recipe_name: str,
    *,
    data_root,
    overrides=(),
    skip_bad: bool = False,
    decode: bool = True,
    progress: bool = True,
) -> str:
    """Load a corpus with a recipe's settings and describe it (counts, speaker x label table, folds).

    The loader reads every file's header; with ``decode`` (the default), every file's audio
    is also decoded as training will decode it (:func:`_load`), and the files it could not
    use are listed with the corpus's other problems (or, with ``skip_bad``, left out with
    them), as ``ser train`` lists them.
    """

    recipe = _load_recipe(recipe_name, overrides)
    manifest = _load(recipe, data_root, skip_bad=skip_bad, decode=decode, progress=progress)
    description = describe_manifest(manifest)
    try:
        _require_two_classes(manifest, recipe)
        splits = _fold_splits(manifest, recipe)
    except (ConfigError, CorpusError):
        # the table is what shows why the folds cannot be made: print it before the error
        print(description, end="\n\n", flush=True)
        raise
    lines = [description, "", f"protocol: {describe_protocol(recipe['protocol'], len(splits))}"]
    for i, (groups, rows) in enumerate(splits, start=1):
        lines.append(f"  fold {i}: test {_groups_text(groups)} ({len(rows)} files)")
    return "\n".join(lines)


def _load_recipe(name, overrides):
    """The resolved recipe (see :func:`ser.recipe.load_recipe`)."""

    return load_recipe(name, list(overrides or []))


def aggregate(fold_results: list[dict], labels: list[str]) -> dict:
    """Per-fold means/stds and pooled WA/UA/macro-F1/confusion over all test predictions."""

    y_true = np.concatenate([np.asarray(r["y_true"]) for r in fold_results])
    y_pred = np.concatenate([np.asarray(r["y_pred"]) for r in fold_results])
    wa = np.array([r["wa"] for r in fold_results])
    ua = np.array([r["ua"] for r in fold_results])
    pooled = scores(y_true, y_pred, len(labels))
    return {
        "wa_mean": float(wa.mean()),
        "wa_std": float(wa.std()),
        "ua_mean": float(ua.mean()),
        "ua_std": float(ua.std()),
        "pooled": {k: pooled[k] for k in ("wa", "ua", "macro_f1", "confusion")},
    }


#: How speaker-adapted scores are obtained, for reports.
ADAPTED_PROTOCOL = (
    "the same fold models, with {what} "
    "from all of each test speaker's recordings (label-free; what `ser classify --same-speaker` does)"
)


def _adapted_summary(done: list[dict], labels: list[str], blocks, functionals: bool = False) -> dict:
    """``{"speaker_adapted": ...}`` when every fold has adapted predictions, else ``{}``."""
    if not done or not all(isinstance(r.get("adapted"), dict) for r in done):
        return {}
    runs = [r | {k: r["adapted"][k] for k in ("wa", "ua", "y_pred")} for r in done]
    return {
        "speaker_adapted": {
            "protocol": ADAPTED_PROTOCOL.format(
                what=" and ".join(
                    (
                        [
                            f"the batch-norm statistics of Conv blocks {', '.join(map(str, blocks))} re-estimated"
                        ]
                        if blocks
                        else []
                    )
                    + (["the functionals standardised"] if functionals else [])
                )
            ),
            **aggregate(runs, labels),
        }
    }


def _results_markdown(results: dict) -> str:
    lines = [
        f"# {results['recipe']} on {results['corpus']}",
        "",
        f"Protocol: {results['protocol']}.",
        "",
        f"Classes ({len(results['classes'])}): {', '.join(results['classes'])}. "
        "WA = accuracy; UA = mean per-class recall.",
        "",
    ]
    sa = results.get("speaker_adapted")
    if sa:
        lines += [
            "| fold | test speakers | n | WA | UA | macro-F1 | WA adapted | UA adapted |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        lines += ["| fold | test speakers | n | WA | UA | macro-F1 |", "|---:|---|---:|---:|---:|---:|"]
    for f in results["folds"]:
        row = f"| {f['fold']} | {_groups_text(f['test_speakers'])} | {f['n']} | {f['wa']:.3f} | {f['ua']:.3f} | {f['macro_f1']:.3f} |"
        if sa:
            row += f" {f['adapted']['wa']:.3f} | {f['adapted']['ua']:.3f} |"
        lines.append(row)
    p = results["pooled"]
    lines += [
        "",
        f"Mean over folds: WA {results['wa_mean']:.3f} ± {results['wa_std']:.3f}, UA {results['ua_mean']:.3f} ± {results['ua_std']:.3f}.",
        f"Pooled over all test predictions: WA {p['wa']:.3f}, UA {p['ua']:.3f}, macro-F1 {p['macro_f1']:.3f}.",
        "",
    ]
    if sa:
        lines += [
            f"Adapted to each test speaker ({sa['protocol']}): WA {sa['wa_mean']:.3f} ± {sa['wa_std']:.3f}, "
            f"UA {sa['ua_mean']:.3f} ± {sa['ua_std']:.3f}; pooled WA {sa['pooled']['wa']:.3f}, "
            f"UA {sa['pooled']['ua']:.3f}, macro-F1 {sa['pooled']['macro_f1']:.3f}. Speaker adaptation "
            "erases what is constant within a speaker: check the speaker x label table (`ser check`).",
            "",
        ]
    parts = results.get("parts")
    if parts:
        cnn, func = parts["cnn"], parts["functionals"]

        def _adapted(d):
            return f", adapted {d['adapted_ua_mean']:.3f}" if "adapted_ua_mean" in d else ""

        weights = [f["fusion_weights"] for f in results["folds"] if "fusion_weights" in f]
        chosen = (
            " The CNN's weight in each fold, chosen on the fold's validation speakers: "
            + ", ".join(f"{w['single']:.2f}" for w in weights)
            + (" (speaker-adapted: " + ", ".join(f"{w['adapted']:.2f}" for w in weights) + ")" if sa else "")
            + "."
            if weights
            else ""
        )
        lines += [
            "The scores above fuse the CNN with the functionals head (`model.functionals`, weighted "
            f"geometric mean of the probabilities). Alone, the CNN scores UA {cnn['ua_mean']:.3f} ± {cnn['ua_std']:.3f}"
            f"{_adapted(cnn)}; the functionals head UA {func['ua_mean']:.3f}{_adapted(func)}.{chosen}",
            "",
        ]
    lines += [
        f"Head: {results['settings']['model']['head']}; "
        + (
            f"an ensemble of {results['settings']['training']['members']} models per fold (mean logits); "
            if results["settings"]["training"].get("members", 1) > 1
            else ""
        )
        + f"normalisation: {results['settings']['features']['normalization']}; "
        + _speeds_text(results["settings"])
        + f"seed {results['settings']['training']['seed']}; {results['seconds']:.0f} s of compute"
        + ("" if results.get("complete", True) else " (INCOMPLETE: not all folds run yet)")
        + ".",
        "",
        "![confusion matrix](confusion.png)",
        "",
    ]
    return "\n".join(lines)


def _speeds_text(settings: dict) -> str:
    """What speed perturbation a run's training used, for ``results.md``."""
    cnn = settings["training"].get("speeds") or []
    head = (settings["model"].get("functionals_speeds") or []) if settings["model"].get("functionals") else []
    parts = [
        f"{what} copies at speeds {', '.join(f'{v:g}' for v in speeds)}"
        for what, speeds in (("CNN crops also cut from", cnn), ("functionals head also fitted on", head))
        if speeds
    ]
    return "".join(p + "; " for p in parts)


def run_recipe(
    recipe_name: str,
    *,
    data_root,
    out_dir,
    folds="all",
    epochs: int | None = None,
    seed: int | None = None,
    members: int | None = None,
    overrides=(),
    skip_bad: bool = False,
    final_model: bool = True,
    cache_dir=None,
    progress: bool = True,
    jobs=1,
    worker: bool = False,
) -> dict:
    """Run a recipe end to end (see the module docstring); returns the results dict.

    Parameters
    ----------
    recipe_name : str
        A recipe name under ``recipes/`` or a recipe folder.
    data_root : path
        The corpus folder (or CSV for ``custom``).
    out_dir : path
        Output folder; rerunning with the same folder resumes.
    folds : "all" or str
        Comma list of 1-based folds to run now.
    epochs, seed, members : int or None
        Shortcuts for ``--set training.epochs=`` / ``training.seed=`` / ``training.members=``.
    overrides : list of str
        ``key=value`` recipe overrides.
    cache_dir : path or None
        Feature cache (default: ``<out_dir>/../.ser-cache`` shared by runs beside each other).
    jobs : int or "auto"
        Train this many folds at once, each in a worker process with its share of the CPUs
        (:mod:`ser.workers`); ``"auto"`` (what ``ser train`` uses): one per CPU, as memory
        allows. Folds are the same either way, up to floating-point rounding (a worker uses
        fewer threads). The final model is trained here once the folds are done.
    worker : bool
        True in such a worker process: train the chosen folds only, with no report and no
        final model.
    """

    t_start = time.time()
    overrides = list(overrides or [])
    if epochs is not None:
        overrides.append(f"training.epochs={int(epochs)}")
    if seed is not None:
        overrides.append(f"training.seed={int(seed)}")
    if members is not None:
        overrides.append(f"training.members={int(members)}")
    recipe = _load_recipe(recipe_name, overrides)
    settings = recipe_to_dict(recipe)
    out = Path(out_dir)  # created once the corpus is checked: a refused run writes nothing
    data_root = str(absolute_root(data_root))  # as the loader names it (and ser check)
    run_info = {"recipe": recipe["name"], "settings": settings, "data_root": data_root}
    if recipe["model"].functionals:
        run_info["functionals_version"] = FUNCTIONALS_VERSION
    previous = read_json(out / "run.json")
    old_model = ((previous or {}).get("settings") or {}).get("model")
    if (
        isinstance(old_model, dict)
        and old_model.get("functionals")
        and recipe["model"].functionals
        and previous.get("functionals_version", 1) != run_info["functionals_version"]
        and _has_results(out)
    ):
        # its folds' scores and its model.keras come from other functionals: never mix them
        raise ConfigError(
            f"{out}: holds a run whose functionals head is of version "
            f"{previous.get('functionals_version', 1)} (this ser computes version "
            f"{run_info['functionals_version']}); use a new --out folder to train with this ser"
        )
    # A run that produced nothing yet (e.g. it stopped at a wrong --data-root) may be restarted
    # with other settings; finished folds or a final model are never mixed with another run's.
    if (
        previous is not None
        and (
            _comparable(previous.get("settings")) != _comparable(settings)
            or previous.get("data_root") != data_root
        )
        and _has_results(out)
    ):
        old = previous.get("settings") or {}
        missing = [
            (section, key, value, setting)
            for section, key, value, setting in (
                ("model", "functionals", False, "model.functionals=false"),
                ("frontend", "level_db", None, "frontend.level_db=none"),
                ("model", "functionals_speeds", [], "model.functionals_speeds=[]"),
                ("training", "speeds", [], "training.speeds=[]"),
            )
            if isinstance(old.get(section), dict) and key not in old[section]
        ]
        # the settings this command would have with the hint's --set added
        hinted = {k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items()}
        for section, key, value, _ in missing:
            if isinstance(hinted.get(section), dict):
                hinted[section][key] = value
        hint = (
            f"; it was written by an older ser: add {' '.join('--set ' + m[3] for m in missing)} to resume it"
            if missing and _comparable(old) == _comparable(hinted) and previous.get("data_root") == data_root
            else ""
        )
        raise ConfigError(
            f"{out}: holds a run with different settings or data; use a new --out folder "
            f"(or delete this one) to start a different run{hint}"
        )
    if not worker:
        _log(f"ser train {recipe['name']}: loading {recipe['corpus']['name']} from {data_root}")
    # a worker does not decode again: its parent did, and a file it found unusable fails the
    # worker's feature extraction the same way (and is skipped the same way)
    manifest = _load(recipe, data_root, skip_bad=skip_bad, decode=not worker, progress=progress)
    _labels(manifest, recipe, folds)  # a run that cannot be made is refused before --out is touched
    out = ensure_folder(out)
    if not worker:
        write_json(out / "run.json", run_info)
    if cache_dir is None:
        cache_dir = out.resolve().parent / ".ser-cache"
        try:
            ensure_folder(cache_dir, "feature cache folder")
        except ConfigError:
            cache_dir = out / ".ser-cache"  # the parent is not writable: keep the cache in the run
    manifest, labels, features, y, feature_seconds, functionals, copies = _prepare(
        recipe,
        manifest,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
        progress=progress,
        folds=folds,
        n_jobs=1 if worker else -1,  # a worker finds its features in the cache its parent filled
    )
    if not worker:
        with atomic_path(out / "manifest.csv") as tmp:
            manifest.to_csv(tmp, index=False)
    tcfg = recipe["training"]
    chosen = _chosen_folds(manifest, recipe, folds)
    all_folds = make_folds(manifest, recipe["protocol"], seed=tcfg.seed, warn_for=chosen)
    protocol_text = describe_protocol(recipe["protocol"], len(all_folds))
    if not worker:
        _log(
            f"{len(manifest)} files, {manifest['speaker'].nunique()} speakers, classes {labels}; "
            f"{protocol_text}"
        )
    info = {"recipe": recipe["name"], "corpus": recipe["corpus"]["name"], "ser_version": _version()}
    speakers = manifest["speaker"].astype(str).to_numpy()

    trainer = None  # built and traced once, on the first model this run trains

    def get_trainer():
        nonlocal trainer
        if trainer is None:
            trainer = Trainer(labels, recipe)
        return trainer

    # (a worker's folds are those its parent found unfinished, and said why)
    earlier = {
        fold.number: None
        if worker
        else _fold_result(out / "folds" / f"fold_{fold.number:02d}", fold, y, _training_files(manifest, fold))
        for fold in all_folds
        if fold.number in chosen
    }
    pending = [fold for fold in all_folds if fold.number in chosen and earlier[fold.number] is None]
    n_jobs = 1 if worker else worker_count(jobs, len(pending), _data_bytes(features, copies))
    in_workers = set()
    if n_jobs > 1:
        release_workers()  # their memory goes to the fold workers
        lanes = _lanes(pending, n_jobs)
        _log(
            f"training {len(pending)} folds in {n_jobs} worker processes "
            f"({threads_per_worker(n_jobs)} thread(s) each; --jobs 1 trains them here)"
        )
        task = {
            "recipe_name": recipe_name,
            "data_root": data_root,
            "out_dir": str(out),
            "overrides": overrides,
            "skip_bad": skip_bad,
            "cache_dir": str(cache_dir),
        }
        run_in_workers(_train_folds_worker, [(task, lane) for lane in lanes], n_jobs)
        in_workers = {fold.number for fold in pending}  # trained and saved there
    # Ctrl-C waits for a safe point between TensorFlow calls: Keras and TensorFlow can lose a
    # KeyboardInterrupt raised inside them (see ser.interrupts)
    with interrupts.deferred():
        for fold in all_folds:
            fold_dir = out / "folds" / f"fold_{fold.number:02d}"
            if fold.number not in chosen or fold.number in in_workers:
                continue
            prefix = f"fold {fold.number}/{len(all_folds)} "
            done = earlier[fold.number]
            if done is not None:
                _log(f"{prefix}done in an earlier run (UA {done['ua']:.3f}): kept")
                continue
            t0 = time.time()
            _log(
                f"{prefix}test {_groups_text(fold.test_groups)} ({len(fold.test)} files); train {len(fold.train)}, "
                f"validation {len(fold.validation)} files"
            )
            # curves of an interrupted attempt at this fold would overlap the new ones
            shutil.rmtree(out / "tensorboard" / f"fold_{fold.number:02d}", ignore_errors=True)
            # The test fold is touched once per member, after that member is fixed.
            test_features = [features[i] for i in fold.test]
            _, per_speaker = np.unique(speakers[fold.test], return_counts=True)
            # adapted scores: the CNN's batch-norm statistics and/or the functionals head's
            # per-speaker standardisation, whichever the model has (as `--same-speaker` does)
            adapt_blocks = recipe["model"].adapt_blocks
            # (the head has a per-speaker regression only if a training speaker has enough files)
            _, per_train_speaker = np.unique(
                speakers[np.concatenate([fold.train, fold.validation])], return_counts=True
            )
            head_adapts = functionals is not None and per_train_speaker.max() >= MIN_ADAPTATION_FILES
            adapt = (bool(adapt_blocks) or head_adapts) and per_speaker.max() >= MIN_ADAPTATION_FILES
            member_logits, member_adapted, members, validation_logits = [], [], [], {}
            member_weights = []
            for split in member_splits(manifest, fold, recipe["protocol"], tcfg):
                model, history = _train_split(
                    split,
                    features,
                    y,
                    labels,
                    recipe,
                    info=info,
                    board=out / "tensorboard" / f"fold_{fold.number:02d}",
                    prefix=prefix,
                    trainer=get_trainer(),
                    copies=copies,
                )
                member_logits.append(
                    predict_logits(model, test_features, multiple=recipe["model"].time_stride)
                )
                if functionals is not None:  # each member's logits on its own validation speakers
                    weights, val = _member_fusion_weights(
                        model, split, features, functionals, y, speakers, recipe, len(labels)
                    )
                    member_weights.append(weights)
                    validation_logits = validation_logits or val  # the first member's are saved
                if adapt and adapt_blocks:
                    member_adapted.append(
                        speaker_adapted_logits(
                            model,
                            test_features,
                            speakers[fold.test],
                            adapt_blocks,
                            multiple=recipe["model"].time_stride,
                        )
                    )
                elif adapt:  # no CNN blocks to adapt: only the functionals head adapts
                    member_adapted.append(member_logits[-1])
                members.append(
                    {
                        "member": split.member,
                        "seed": split.seed,
                        "validation_speakers": list(split.validation_groups),
                        "history": history,
                        "ua": scores(y[fold.test], member_logits[-1].argmax(1), len(labels))["ua"],
                    }
                    | (
                        {"fusion_weights": dict(zip(("single", "adapted"), member_weights[-1], strict=True))}
                        if member_weights
                        else {}
                    )
                    | (
                        {"adapted_ua": scores(y[fold.test], member_adapted[-1].argmax(1), len(labels))["ua"]}
                        if adapt
                        else {}
                    )
                )
            # An ensemble averages its members' logits (as ser.model.ensemble_model does).
            logits = np.mean(member_logits, axis=0)
            adapted_logits = np.mean(member_adapted, axis=0) if adapt else None
            with atomic_path(fold_dir / "logits.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(
                        fh,
                        rows=np.asarray(fold.test),
                        cnn=logits,
                        **({"cnn_adapted": adapted_logits} if adapt else {}),
                        **validation_logits,
                    )
            parts = {}
            if functionals is not None:
                # The functionals head sees the fold's training speakers only (train + validation).
                weights = _ensemble_weights(member_weights)
                logits, adapted_logits, parts = _fuse_fold(
                    logits, adapted_logits, functionals, y, speakers, fold, len(labels), weights
                )
            history = members[0]["history"]
            pred = logits.argmax(1)
            s = scores(y[fold.test], pred, len(labels))
            adapted = None
            if adapt:
                adapted_pred = adapted_logits.argmax(1)
                a = scores(y[fold.test], adapted_pred, len(labels))
                adapted = {k: a[k] for k in ("wa", "ua", "macro_f1", "confusion")} | {
                    "y_pred": adapted_pred.tolist()
                }
            _log(
                f"{prefix}test WA {s['wa']:.3f}  UA {s['ua']:.3f}"
                + (
                    f"; adapted to each test speaker WA {adapted['wa']:.3f}  UA {adapted['ua']:.3f}"
                    if adapted
                    else ""
                )
                + ("; members UA " + ", ".join(f"{m['ua']:.3f}" for m in members) if len(members) > 1 else "")
                + (
                    f"; CNN alone UA {parts['cnn']['ua']:.3f}"
                    + (f", adapted {parts['cnn']['adapted_ua']:.3f}" if adapt else "")
                    if parts
                    else ""
                )
                + f"  ({time.time() - t0:.0f}s)"
            )
            with atomic_path(fold_dir / "predictions.csv") as tmp:
                import pandas as pd

                probabilities = softmax(logits)
                pd.DataFrame(
                    {
                        "path": manifest["path"].to_numpy()[fold.test],
                        "speaker": speakers[fold.test],
                        "label": [labels[i] for i in y[fold.test]],
                        "predicted": [labels[i] for i in pred],
                        **{f"p_{name}": probabilities[:, j] for j, name in enumerate(labels)},
                        **({"predicted_adapted": [labels[i] for i in adapted["y_pred"]]} if adapted else {}),
                    }
                ).to_csv(tmp, index=False, float_format="%.5f")
            write_json(
                fold_dir / "result.json",
                {
                    "fold": fold.number,
                    "test_speakers": list(fold.test_groups),
                    "validation_speakers": list(fold.validation_groups),
                    "training_files": _training_files(manifest, fold),
                    "n": s["n"],
                    "wa": s["wa"],
                    "ua": s["ua"],
                    "macro_f1": s["macro_f1"],
                    "confusion": s["confusion"],
                    "y_true": y[fold.test].tolist(),
                    "y_pred": pred.tolist(),
                    "history": history,
                    "seconds": time.time() - t0,
                }
                | ({"members": members} if tcfg.members > 1 else {})
                | ({"adapted": adapted} if adapted else {})
                | parts,
            )

    if worker:
        return {}
    done = [
        _fold_result(out / "folds" / f"fold_{f.number:02d}", f, y, _training_files(manifest, f))
        for f in all_folds
    ]
    done = [r for r in done if r is not None]
    results = None
    if done:
        results = {
            "recipe": recipe["name"],
            "corpus": recipe["corpus"]["name"],
            "protocol": protocol_text,
            "classes": labels,
            "complete": len(done) == len(all_folds),
            "folds": [
                {k: r[k] for k in ("fold", "test_speakers", "n", "wa", "ua", "macro_f1")}
                | {"best_epoch": r["history"]["best_epoch"]}
                | ({"adapted": {k: r["adapted"][k] for k in ("wa", "ua")}} if "adapted" in r else {})
                | {k: r[k] for k in ("cnn", "functionals", "fusion_weights") if k in r}
                for r in done
            ],
            **aggregate(done, labels),
            **_adapted_summary(
                done, labels, recipe["model"].adapt_blocks, functionals=recipe["model"].functionals
            ),
            **_parts_summary(done),
            "seconds": float(sum(r["seconds"] for r in done) + feature_seconds),
            "settings": settings,
        }
        plot_confusion(
            results["pooled"]["confusion"],
            labels,
            out / "confusion.png",
            title=f"{recipe['name']}: pooled over {len(done)} test folds (UA {results['pooled']['ua']:.3f})",
        )
        write_json(out / "results.json", results)
        write_text(out / "results.md", _results_markdown(results))
        adapted_line = ""
        if "speaker_adapted" in results:
            sa = results["speaker_adapted"]
            adapted_line = (
                f"; adapted to each test speaker (label-free): WA {sa['wa_mean']:.3f} ± {sa['wa_std']:.3f}, "
                f"UA {sa['ua_mean']:.3f} ± {sa['ua_std']:.3f}"
            )
        _log(
            f"{recipe['name']}: WA {results['wa_mean']:.3f} ± {results['wa_std']:.3f}, "
            f"UA {results['ua_mean']:.3f} ± {results['ua_std']:.3f} over {len(done)}/{len(all_folds)} folds "
            f"(pooled WA {results['pooled']['wa']:.3f}, UA {results['pooled']['ua']:.3f}){adapted_line} "
            f"-> {out / 'results.md'}"
        )

    complete = results is not None and results["complete"]
    if final_model and not complete:
        _log("final model: trained once every fold is done (run the remaining folds, or all)")
    if final_model and complete and not (out / "model.keras").is_file():
        # (Ctrl-C waits for a safe point, as in the folds above)
        with interrupts.deferred():
            t0 = time.time()
            shutil.rmtree(out / "tensorboard" / "final", ignore_errors=True)
            splits = member_splits(manifest, None, recipe["protocol"], tcfg)
            final_info = dict(info)
            if results is not None:
                final_info["cv"] = {
                    "protocol": protocol_text,
                    "ua_mean": results["ua_mean"],
                    "wa_mean": results["wa_mean"],
                }
            trained, member_weights = [], []
            for split in splits:
                tag = f" member {split.member}/{tcfg.members}" if tcfg.members > 1 else ""
                _log(
                    f"final model{tag}: all speakers ({len(split.train)} train, "
                    f"{len(split.validation)} validation files)"
                )
                model, _ = _train_split(
                    split,
                    features,
                    y,
                    labels,
                    recipe,
                    info=final_info,
                    board=out / "tensorboard" / "final",
                    prefix="final ",
                    trainer=get_trainer(),
                    copies=copies,
                )
                if functionals is not None:
                    member_weights.append(
                        _member_fusion_weights(
                            model, split, features, functionals, y, speakers, recipe, len(labels)
                        )[0]
                    )
                trained.append((model.get_weights(), dict(model.get_layer("ser_metadata").info)))
            if len(trained) > 1:
                model = _ensemble_of(trained, labels, recipe)
            if functionals is not None:
                head = FunctionalsHead.fit(functionals, y, speakers, len(labels))
                head.weight, head.speaker_weight = _ensemble_weights(member_weights)
                _log(
                    f"final model: fusion weights of the CNN chosen on the validation speakers: "
                    f"{head.weight:.2f} for a single file, {head.speaker_weight:.2f} speaker-adapted"
                )
                model.get_layer("ser_metadata").info["functionals"] = head.to_dict()
            interrupts.check()  # a Ctrl-C during the head's fit: stop before the model is written
            with atomic_path(out / "model.keras") as tmp:
                model.save(tmp)
            _log(f"final model written to {out / 'model.keras'} ({time.time() - t0:.0f}s)")
    trainer = None
    _clear_session()
    _log(f"done in {time.time() - t_start:.0f}s; outputs in {out}")
    return results or {}


def _train_folds_worker(task: dict, folds: str) -> None:
    """A worker process's share of a run (:func:`ser.workers.run_in_workers`): its folds."""
    run_recipe(**task, folds=folds, final_model=False, progress=False, worker=True)


def _lanes(folds: list, n: int) -> list[str]:
    """``folds`` dealt to ``n`` workers, largest first to the least loaded ("1,4" per worker)."""
    load = [0] * n
    lanes = [[] for _ in range(n)]
    for fold in sorted(folds, key=lambda f: -len(f.train)):
        i = int(np.argmin(load))
        lanes[i].append(fold.number)
        load[i] += len(fold.train)
    return [",".join(str(k) for k in sorted(lane)) for lane in lanes if lane]


def _data_bytes(features, copies) -> int:
    """Bytes of the features a worker loads (the files' and their speed copies')."""
    total = sum(f.nbytes for f in features)
    if copies is not None:
        total += sum(c.nbytes for group in copies for c in group)
    return int(total)


def _fusion_weights(functionals, y, speakers, train_rows, validation: dict, n_classes: int) -> tuple:
    """The CNN's fusion weights ``(single file, speaker-adapted)``, chosen on validation speakers.

    A head fitted on ``train_rows`` alone scores the validation rows; each weight is the one
    of :data:`ser.fusion.FUSION_GRID` whose fusion with the CNN's validation logits
    (``validation``, from :func:`_validation_logits`) predicts them best (see
    :func:`ser.fusion.choose_fusion_weight`). Without
    validation rows both are :data:`ser.fusion.FUSION_WEIGHT`.
    """

    rows = validation.get("validation_rows")
    if rows is None or len(rows) == 0 or len(train_rows) == 0:
        return FUSION_WEIGHT, FUSION_WEIGHT
    train_rows = np.asarray(train_rows)
    head = FunctionalsHead.fit(functionals[train_rows], y[train_rows], speakers[train_rows], n_classes)
    single = choose_fusion_weight(
        validation["validation_cnn"], head.log_probabilities(functionals[rows, 0]), y[rows]
    )
    adapted = single
    if head.speaker is not None:
        own = speaker_log_probabilities(head, functionals[rows, 0], speakers[rows])
        cnn = validation.get("validation_cnn_adapted", validation["validation_cnn"])
        adapted = choose_fusion_weight(cnn, own, y[rows])
    return single, adapted


def _member_fusion_weights(model, split, features, functionals, y, speakers, recipe, n_classes) -> tuple:
    """``(weights, validation logits)`` of one trained member: the fusion weights it chooses
    on its own validation speakers (:func:`_fusion_weights`), and the logits they came from."""
    val = _validation_logits(model, split, features, speakers, recipe)
    return _fusion_weights(functionals, y, speakers, split.train, val, n_classes), val


def _ensemble_weights(member_weights: list) -> tuple:
    """The fusion weights of an ensemble: the mean of those its members chose, each on its
    own validation speakers, so every member's split counts and no member's choice looks at
    speakers it trained on."""
    single, adapted = np.mean(np.asarray(member_weights, dtype=np.float64), axis=0)
    return float(single), float(adapted)


def _fuse_fold(logits, adapted_logits, functionals, y, speakers, fold, n_classes, weights):
    """Fold logits fused with the functionals head (:mod:`ser.fusion`).

    The head is fitted on the fold's training speakers (train + validation rows); the test
    rows are scored with the global regression, and, for the adapted scores, with the
    per-speaker one (each test speaker's own functionals as the reference, label-free).

    Returns
    -------
    (fused logits, fused adapted logits or None, parts)
        ``parts``: ``{"cnn": ..., "functionals": ...}``, the scores of each expert alone.
    """

    train = np.concatenate([fold.train, fold.validation])
    head = FunctionalsHead.fit(functionals[train], y[train], speakers[train], n_classes)
    head.weight, head.speaker_weight = weights
    y_test = y[fold.test]
    plain = head.log_probabilities(functionals[fold.test, 0])
    cnn = scores(y_test, logits.argmax(1), n_classes)
    parts = {
        "cnn": {"wa": cnn["wa"], "ua": cnn["ua"], "macro_f1": cnn["macro_f1"]},
        "functionals": {"ua": scores(y_test, plain.argmax(1), n_classes)["ua"]},
        "fusion_weights": {"single": head.weight, "adapted": head.speaker_weight},
    }
    fused_adapted = None
    if adapted_logits is not None:
        own = speaker_log_probabilities(head, functionals[fold.test, 0], speakers[fold.test])
        cnn_adapted = scores(y_test, adapted_logits.argmax(1), n_classes)
        parts["cnn"] |= {"adapted_wa": cnn_adapted["wa"], "adapted_ua": cnn_adapted["ua"]}
        parts["functionals"]["adapted_ua"] = scores(y_test, own.argmax(1), n_classes)["ua"]
        fused_adapted = fuse(adapted_logits, own, head.speaker_weight)
    return fuse(logits, plain, head.weight), fused_adapted, parts


def _validation_logits(model, split, features, speakers, recipe) -> dict:
    """The CNN's logits on a split's validation rows (plain, and adapted to each speaker
    where the model has blocks to adapt)."""
    rows = np.asarray(split.validation)
    if rows.size == 0:
        return {}
    val_features = [features[i] for i in rows]
    multiple = recipe["model"].time_stride
    out = {"validation_rows": rows, "validation_cnn": predict_logits(model, val_features, multiple=multiple)}
    blocks = recipe["model"].adapt_blocks
    if blocks:
        out["validation_cnn_adapted"] = speaker_adapted_logits(
            model, val_features, speakers[rows], blocks, multiple=multiple
        )
    return out


def _parts_summary(done: list[dict]) -> dict:
    """Mean scores of the CNN alone and the functionals alone, when every fold has them."""
    if not done or not all("cnn" in r and "functionals" in r for r in done):
        return {}
    out = {}
    for part in ("cnn", "functionals"):
        keys = sorted(set.intersection(*(set(r[part]) for r in done)) - {"macro_f1"})
        out[part] = {}
        for k in keys:
            values = np.array([r[part][k] for r in done], dtype=np.float64)
            out[part][f"{k}_mean"] = float(values.mean())
            out[part][f"{k}_std"] = float(values.std())
    return {"parts": out}


def _train_split(split, features, y, labels, recipe, *, info, board: Path, prefix: str, trainer, copies=None):
    """:func:`train_model` on one member's split (TensorBoard in ``board``/member_J for ensembles);
    ``copies``: every file's speed-perturbed copies (:func:`_prepare`), of which the training
    files' own are used."""
    members = recipe["training"].members
    return train_model(
        [features[i] for i in split.train],
        y[split.train],
        [features[i] for i in split.validation],
        y[split.validation],
        labels,
        recipe,
        info=info,
        log_dir=str(board / f"member_{split.member}" if members > 1 else board),
        prefix=prefix + (f"member {split.member}/{members} " if members > 1 else ""),
        trainer=trainer,
        seed=split.seed,
        train_copies=None if copies is None else [copies[i] for i in split.train],
    )


def _ensemble_of(trained, labels, recipe):
    """An :func:`ser.model.ensemble_model` of members given as ``(weights, info)`` pairs."""

    frontend = recipe["frontend"]
    members = []
    for j, (weights, member_info) in enumerate(trained, start=1):
        member = build_model(
            labels,
            frontend.n_mels,
            recipe["model"],
            frontend=frontend.to_dict(),
            info=member_info,
            name=f"member_{j}",
        )
        member.set_weights(weights)
        members.append(member)
    info = {k: v for k, v in trained[0][1].items() if k != "seed"}
    info |= {"members": len(members), "member_seeds": [m[1].get("seed") for m in trained]}
    return ensemble_model(members, labels, frontend=frontend.to_dict(), info=info)


#: Keys every fold's ``result.json`` must hold to be reused by a rerun.
FOLD_RESULT_KEYS = (
    "fold",
    "test_speakers",
    "n",
    "wa",
    "ua",
    "macro_f1",
    "confusion",
    "y_true",
    "y_pred",
    "history",
    "seconds",
)


def _has_results(out: Path) -> bool:
    """Whether a run folder holds finished work (a fold result or the final model)."""
    return (out / "model.keras").exists() or any((out / "folds").glob("fold_*/result.json"))


def _training_files(manifest, fold) -> str:
    """A digest of the utterances a fold trains and validates on: a saved fold result is
    reused only by a run whose fold would train on the same files (e.g. not after a file
    left out by --skip-bad was fixed)."""
    import hashlib

    ids = manifest["utt_id"].astype(str).to_numpy()
    text = "\n".join(ids[np.concatenate([fold.train, fold.validation])])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _fold_result(fold_dir: Path, fold, y: np.ndarray, training_files: str | None = None) -> dict | None:
    """A fold's saved result if it belongs to this fold of this manifest, else None.

    A result that cannot be read, lacks a key, was computed on other test files or labels, or
    (``training_files``, see :func:`_training_files`; results written before 2026-11-29 lack
    it) trained on other files (the corpus changed between runs, e.g. files fixed or
    ``--skip-bad`` toggled) is not trusted: the fold is run again and its result replaced.
    """
    path = fold_dir / "result.json"
    r = read_json(path)
    if r is None:
        if path.exists():
            _log(f"{path}: unreadable; fold {fold.number} will be run again")
        return None
    expected = y[fold.test].tolist()
    ok = (
        isinstance(r, dict)
        and all(key in r for key in FOLD_RESULT_KEYS)
        and r["fold"] == fold.number
        and r["test_speakers"] == list(fold.test_groups)
        and r["y_true"] == expected
        and isinstance(r["y_pred"], list)
        and len(r["y_pred"]) == len(expected)
        and isinstance(r["history"], dict)
        and "best_epoch" in r["history"]
        and (training_files is None or r.get("training_files", training_files) == training_files)
    )
    if not ok:
        _log(f"{path}: does not match fold {fold.number} of this corpus; the fold will be run again")
        return None
    return r


def _comparable(settings):
    """Settings without the recipe file's path (a recipe run by name or by folder is the same run).

    A training or model setting added after a run was written (e.g. ``training.members``)
    counts as its default, which is what that run did, so the run resumes under this version.
    """

    out = {k: v for k, v in (settings or {}).items() if k != "path"}
    if isinstance(out.get("model"), dict) and "functionals" not in out["model"]:
        # runs written before the functionals head existed did not fuse it
        out["model"] = {**out["model"], "functionals": False}
    if isinstance(out.get("model"), dict) and "functionals_speeds" not in out["model"]:
        # nor fit the functionals head on speed-perturbed copies
        out["model"] = {**out["model"], "functionals_speeds": []}
    if isinstance(out.get("training"), dict) and "speeds" not in out["training"]:
        # nor cut the CNN's training crops from speed-perturbed copies
        out["training"] = {**out["training"], "speeds": []}
    if isinstance(out.get("model"), dict) and "deltas" not in out["model"]:
        # nor feed the CNN delta features
        out["model"] = {**out["model"], "deltas": False}
    if isinstance(out.get("frontend"), dict) and "level_db" not in out["frontend"]:
        # nor normalise the recording level
        out["frontend"] = {**out["frontend"], "level_db": None}
    for section, defaults in (
        ("training", TrainingConfig().to_dict()),
        ("model", ModelConfig().to_dict()),
    ):
        if isinstance(out.get(section), dict):
            out[section] = {**defaults, **out[section]}
    if isinstance(out.get("model"), dict) and out["model"].get("functionals") is False:
        out["model"]["functionals_speeds"] = []  # without the head its training data changes nothing
    return out


def _version() -> str:

    return __version__


def _clear_session() -> None:
    import keras

    keras.backend.clear_session()
