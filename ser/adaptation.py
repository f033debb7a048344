"""Label-free speaker adaptation: batch-norm statistics re-estimated from one speaker's files.

A model's batch normalisation layers standardise each conv block's output with statistics
of the training speakers. For a new speaker, those of the speaker's own recordings can be
used instead (AdaBN: Li et al., "Revisiting Batch Normalization For Practical Domain
Adaptation", 2016): the deep features are then measured relative to how this speaker
usually sounds (louder, higher or faster than *their* average), much as per-speaker
standardisation of functionals helps classic classifiers. No label is used, and the model's
weights do not change.

The statistics are estimated block by block, in order, over the valid (unpadded) positions
of all the given recordings, so block 5's statistics are those of the block-4 output that
the adapted block 4 produces. Which blocks adapt is :attr:`ser.model.ModelConfig.adapt_blocks`
(by default the last two, 4 and 5).

The speaker's recordings should span several emotions: like any speaker normalisation, it
erases what is constant within a speaker, so a speaker recorded in one emotion only (a
speaker x label confound, see ``ser check``) loses that emotion.
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np

from ser.constants import MIN_ADAPTATION_FILES
from ser.errors import ConfigError
from ser.model import ensemble_members
from ser.runtime import length_batches, predict_logits
from ser.store import take

#: Per model, its block sub-models (built once; they share the model's weights).
_BLOCK_MODELS = weakref.WeakKeyDictionary()


def _block_models(model, blocks):
    """Per block, a model from the inputs to ``(conv output, its time mask)``."""
    import keras

    cache = _BLOCK_MODELS.setdefault(model, {})
    out = []
    for i in blocks:
        if i not in cache:
            try:
                mask = model.get_layer(f"mask{i}").input[1]
                cache[i] = keras.Model(model.inputs, [model.get_layer(f"conv{i}").output, mask])
            except ValueError:
                raise ConfigError(
                    f"cannot adapt block {i}: the model has no conv{i}/bn{i}/mask{i} layers; "
                    "expected a model built by ser.model.build_model"
                ) from None
        out.append(cache[i])
    return out


def _batchnorms(model, blocks) -> list:
    """The batch-norm layer of each block, member by member for an ensemble."""
    return [member.get_layer(f"bn{i}") for member in ensemble_members(model) for i in blocks]


def batchnorm_state(model, blocks) -> list[tuple[np.ndarray, np.ndarray]]:
    """The current moving mean and variance of the batch-norm layer of each block.

    For an ensemble (:func:`ser.model.ensemble_model`): those of every member, member by member.
    """
    return [
        (np.array(b.moving_mean.numpy()), np.array(b.moving_variance.numpy()))
        for b in _batchnorms(model, blocks)
    ]


def set_batchnorm_state(model, blocks, state) -> None:
    """Assign ``(mean, variance)`` pairs (as :func:`batchnorm_state` returns) to the blocks."""
    for layer, (mean, var) in zip(_batchnorms(model, blocks), state, strict=True):
        layer.moving_mean.assign(np.asarray(mean, np.float32))
        layer.moving_variance.assign(np.asarray(var, np.float32))


def adapt_batchnorm(model, features, blocks, *, batch_size: int = 32, multiple: int = 16) -> None:
    """Set the batch-norm statistics of ``blocks`` to those of ``features`` (in place).

    Parameters
    ----------
    model : keras.Model
        Built by :func:`ser.model.build_model` (layers ``conv{i}``, ``bn{i}``, ``mask{i}``), or
        an ensemble of such models (every member is adapted).
    features : list of np.ndarray [shape=(t_i, n_mels)]
        One speaker's recordings, as the model takes them.
    blocks : sequence of int
        Blocks (1..5) to adapt; done in increasing order.
    """
    blocks = sorted(int(b) for b in blocks)
    if not blocks:
        return
    if not features:
        raise ConfigError("speaker adaptation needs at least one recording of the speaker")
    for member in ensemble_members(model):
        for i, sub in zip(blocks, _block_models(member, blocks), strict=True):
            total = count = squares = 0.0
            for _, x, m in length_batches(features, batch_size, multiple):
                out, valid = sub([x, m], training=False)
                out = np.asarray(out, dtype=np.float64)
                w = np.asarray(valid, dtype=np.float64)[:, :, None, None]
                total = total + (out * w).sum(axis=(0, 1, 2))
                squares = squares + (out * out * w).sum(axis=(0, 1, 2))
                count += w.sum() * out.shape[2]
            mean = total / count
            var = np.maximum(squares / count - mean * mean, 0.0)
            set_batchnorm_state(member, [i], [(mean, var)])


@contextlib.contextmanager
def adapted(model, features, blocks, **kwargs):
    """Within the block, ``model`` uses batch-norm statistics of ``features``; restored after.

    For an ensemble (:func:`ser.model.ensemble_model`), every member is adapted.
    """
    blocks = sorted(int(b) for b in blocks)
    saved = batchnorm_state(model, blocks)
    try:
        adapt_batchnorm(model, features, blocks, **kwargs)
        yield model
    finally:
        set_batchnorm_state(model, blocks, saved)


def speaker_adapted_logits(
    model,
    features,
    speakers,
    blocks,
    *,
    batch_size: int = 32,
    multiple: int = 16,
    min_files: int = MIN_ADAPTATION_FILES,
):
    """Logits of every utterance with the model adapted to its own speaker's utterances.

    Parameters
    ----------
    model : keras.Model
        A model of :func:`ser.model.build_model` or an ensemble of them.
    features : list of np.ndarray
    speakers : sequence of str
        One per utterance; each speaker's statistics come from all their utterances here.
    blocks : sequence of int
    min_files : int
        Speakers with fewer utterances (default :data:`ser.constants.MIN_ADAPTATION_FILES`)
        get the unadapted model's logits.

    Returns
    -------
    np.ndarray [shape=(len(features), n_classes)]
    """
    speakers = np.asarray(speakers).astype(str)
    out = np.zeros((len(features), model.output_shape[-1]), dtype=np.float32)
    for speaker in sorted(set(speakers)):
        idx = np.flatnonzero(speakers == speaker)
        own = take(features, idx)  # (a ser.store.FeatureView's are read when needed)
        context = (
            adapted(model, own, blocks, batch_size=batch_size, multiple=multiple)
            if len(own) >= min_files
            else contextlib.nullcontext()
        )
        with context:
            out[idx] = predict_logits(model, own, batch_size=batch_size, multiple=multiple)
    return out
