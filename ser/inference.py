"""Classify audio with a trained model: whole utterances, or sliding windows for long audio.

A ``model.keras`` written by ``ser train`` is self-describing (see :mod:`ser.model`): its
``ser_metadata`` layer holds the class names, the log-mel settings and how the features
were normalised, so :class:`EmotionClassifier` needs nothing but the file.

Audio up to :data:`WHOLE_MAX_DURATION` seconds is classified in one pass. Longer audio, or
any audio when a window is asked for, is cut into windows of :data:`DEFAULT_WINDOW` seconds
every :data:`DEFAULT_HOP` seconds, read from disk block by block (memory stays bounded for
a file of any length) and run through the model :data:`BATCH_WINDOWS` windows at a time
(fewer, long ones: :data:`BATCH_SECONDS`).
The file's scores are the mean of the windows' probabilities.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ser import interrupts
from ser.adaptation import MIN_ADAPTATION_FILES, adapt_batchnorm, batchnorm_state, set_batchnorm_state
from ser.audio import audio_info, is_silent, iter_audio_blocks, load_audio, prepare_waveform
from ser.constants import MAX_LOAD_DURATION, MIN_DURATION, SILENCE_PEAK
from ser.errors import AudioError, ConfigError, ModelError, SerError
from ser.features import MIN_VOICED_FRACTION, FrontendConfig, logmel, model_input, pad_batch, voiced_fraction
from ser.fusion import FunctionalsHead
from ser.model import ensemble_members, feature_map_model
from ser.normalization import NORMALIZATIONS, feature_stats, normalize, standardization
from ser.runtime import conv5_strides, forward_function, softmax

#: Audio up to this long (seconds) is classified whole; longer audio in sliding windows.
WHOLE_MAX_DURATION = 12.0

#: Sliding-window length in seconds (about one emotional utterance).
DEFAULT_WINDOW = 4.0

#: Hop between sliding windows in seconds (windows overlap by half).
DEFAULT_HOP = 2.0

#: A speaker-reference recording (``--same-speaker``) longer than this (seconds) takes part in
#: the adaptation with its first this-many seconds that are not silent, so memory stays bounded.
REFERENCE_MAX_SECONDS = 60.0

#: ``--same-speaker`` notes when the unadapted model hears at least this share of the
#: speaker's recordings as one class (see :func:`adapt_to_speaker`).
ONE_EMOTION_SHARE = 0.6

#: Windows run through the model together.
BATCH_WINDOWS = 16

#: Seconds of audio run through the model together at most: fewer than
#: :data:`BATCH_WINDOWS` windows when they are longer than :data:`DEFAULT_WINDOW`, so memory
#: does not grow with ``--window`` (16 windows of 120 s took 2.8 GB).
BATCH_SECONDS = BATCH_WINDOWS * DEFAULT_WINDOW

#: Longest window (seconds) and so the longest audio classified in one pass: the model holds
#: a window whole in memory (600 s: about 1 GB beside the model), as ``ser attention`` draws
#: at most this much.
MAX_WINDOW = MAX_LOAD_DURATION

#: Seconds of audio read from disk at a time when streaming a long file.
STREAM_BLOCK_SECONDS = 30.0

#: The model is called eagerly this many times, then through a traced graph (``tf.function``),
#: so that one-off calls (the ``ser classify`` command) skip the tracing cost and repeated
#: calls (many files, long files, a server) run several times faster.
EAGER_CALLS = 2


def _speech_mask(voiced) -> np.ndarray:
    """Which of ``voiced`` (:func:`ser.features.voiced_fraction` of each window, or of a
    whole recording) hold speech: at least :data:`ser.features.MIN_VOICED_FRACTION`."""

    return np.asarray(voiced, dtype=np.float64) >= MIN_VOICED_FRACTION


def holds_speech(voiced) -> bool:
    """Whether any of ``voiced`` (see :func:`_speech_mask`) holds speech:
    :attr:`Prediction.speech`."""
    return bool(_speech_mask(voiced).any())


def counted_windows(voiced) -> np.ndarray:
    """Which windows of a recording count toward its label (a boolean mask): those that hold
    speech, at least :data:`ser.features.MIN_VOICED_FRACTION` of their frames voiced
    (``voiced``: each window's :func:`ser.features.voiced_fraction`). Pauses and noise are
    still classified and listed, but do not vote: every window is brought to speech level
    before it is classified, so noise would otherwise vote like speech. Voicing, unlike
    loudness, does not leave out a speaker's ordinary speech beside their shouting. Where no
    window holds speech, all count (the prediction says there is no speech)."""
    mask = _speech_mask(voiced)
    return mask if mask.any() else np.ones_like(mask)


def window_vote(probs, voiced) -> np.ndarray:
    """A recording's probabilities from its windows': the mean over those that count
    (:func:`counted_windows`)."""
    probs = np.asarray(probs, dtype=np.float64)
    mean = probs[counted_windows(voiced)].mean(axis=0)
    return mean / mean.sum()


#: What ``ser classify`` and ``ser attention`` say of audio without voiced speech.
NO_SPEECH_NOTE = (
    "no voiced speech found (noise, hum, music or whispering?): the model was trained on speech, "
    "so its label is a guess"
)

#: Name of the model file inside a run folder.
MODEL_FILENAME = "model.keras"


@dataclass(frozen=True)
class Segment:
    """One window of a long recording: its span in seconds and its class probabilities.

    ``counted`` is False for a window without speech (a pause or noise, see
    :func:`counted_windows`): its label is what the model makes of it, but it does not count
    toward the recording's label.
    """

    start: float
    end: float
    label: str
    scores: dict
    counted: bool = True

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "scores": dict(self.scores),
            "counted": self.counted,
        }


@dataclass(frozen=True)
class Prediction:
    """What :meth:`EmotionClassifier.classify` returns.

    Attributes
    ----------
    file : str or None
        The audio file, or None for an array.
    duration : float
        Length of the audio in seconds.
    label : str
        The most probable class.
    scores : dict
        Class name -> probability (floats summing to 1), in the model's label order.
    segments : list of Segment
        The windows of windowed input, in time order; empty for whole-utterance input.
    speech : bool
        False where the audio holds no voiced speech (under
        :data:`ser.features.MIN_VOICED_FRACTION` of its frames voiced, in every window):
        noise, unpitched sound or whispering, which the model was not trained on. The label
        is still its best guess.
    """

    file: str | None
    duration: float
    label: str
    scores: dict
    segments: list = field(default_factory=list)
    speech: bool = True

    @property
    def probability(self) -> float:
        """Probability of :attr:`label`."""
        return self.scores[self.label]

    def top(self, k: int = 1) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(class, probability)`` pairs, best first."""
        return sorted(self.scores.items(), key=lambda item: -item[1])[: max(int(k), 1)]

    def to_dict(self) -> dict:
        """``{"file", "duration", "label", "scores", "speech", "segments": [{"start", "end",
        "label", "scores", "counted"}]}``."""
        return {
            "file": self.file,
            "duration": self.duration,
            "label": self.label,
            "scores": dict(self.scores),
            "speech": self.speech,
            "segments": [s.to_dict() for s in self.segments],
        }


def model_features(classifier: EmotionClassifier, waveform: np.ndarray, *, trim: bool = True) -> np.ndarray:
    """The features a classifier's model takes for one waveform.

    The only place inference turns audio into model input, so classification and the
    attention maps always see the same features, and the same as training
    (:func:`ser.features.model_input`, then :func:`ser.normalization.normalize`): the
    log-mel of :func:`ser.features.logmel` with the model's frontend settings, trimmed of
    leading and trailing silence, then, by ``info["normalization"]`` (see
    :data:`ser.normalization.NORMALIZATIONS`), standardised by the waveform's own statistics ("utterance";
    also "speaker" without a speaker reference, an approximation) or by the speaker
    reference's ("speaker" after :meth:`EmotionClassifier.set_speaker_reference`). "global"
    normalisation is inside the model.

    Parameters
    ----------
    classifier : EmotionClassifier
    waveform : np.ndarray [shape=(n,)]
        Mono float32 at ``classifier.sample_rate`` (as :func:`ser.audio.load_audio` returns).
    trim : bool
        Drop leading and trailing silence as training did (:func:`ser.features.trim_silence`);
        sliding windows pass ``False`` so their timeline stays exact.

    Returns
    -------
    np.ndarray [shape=(frames, n_mels), dtype=float32]
    """

    if trim:
        features = model_input(waveform, classifier.frontend)
    else:
        features = logmel(waveform, classifier.frontend)
    return normalize([features], None, classifier.normalization, reference=classifier.speaker_reference)[0]


def check_window(window: float | None, hop: float | None) -> tuple[float, float]:
    """Validate sliding-window settings and fill in the defaults.

    A window without a hop hops by half a window (at least 0.1 s); a hop without a window uses
    :data:`DEFAULT_WINDOW`. The hop may not exceed the window, so windows cover the audio, and
    the window may not exceed :data:`MAX_WINDOW`, so memory stays bounded. Both are at least
    0.1 s (:data:`ser.constants.MIN_DURATION`): the shortest audio classified, and at most ten
    windows a second.

    Returns
    -------
    window, hop : float
        In seconds.
    """

    for name, value in (("window", window), ("hop", hop)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(f"{name} must be a positive number of seconds. Received: {name}={value!r}")
    if window is None:
        window = DEFAULT_WINDOW
        hop = DEFAULT_HOP if hop is None else hop
    elif hop is None:
        hop = max(window / 2.0, MIN_DURATION)
    if window < MIN_DURATION:
        raise ConfigError(f"window must be at least {MIN_DURATION} s. Received: window={window}")
    if window > MAX_WINDOW:
        raise ConfigError(
            f"window must be at most {MAX_WINDOW:.0f} s (each window is classified in one pass, "
            f"in memory). Received: window={window:g}"
        )
    if hop < MIN_DURATION:
        # (a hop of 1 ms would classify an hour-long file as 3.6 million windows)
        raise ConfigError(f"hop must be at least {MIN_DURATION} s. Received: hop={hop:g}")
    if hop > window:
        raise ConfigError(
            f"hop must not exceed the window, or audio between windows is never heard. "
            f"Received: window={window}, hop={hop}"
        )
    return float(window), float(hop)


def iter_windows(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a stream of sample blocks into windows, keeping only what the next window needs.

    Windows of ``window`` samples start every ``hop`` samples; if they do not reach the end
    of the stream, one more full-length window is aligned with the end. A stream shorter
    than one window gives a single window holding all of it.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i,)]
        Consecutive pieces of one waveform (e.g. :func:`ser.audio.iter_audio_blocks`).
    window, hop : int
        In samples, ``0 < hop <= window``.

    Yields
    ------
    start : int
        First sample of the window.
    samples : np.ndarray [shape=(window,) or shorter for the single short window]
    """
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # stream position of buf[0]
    next_start = 0
    covered = 0  # end of the last window yielded
    total = 0
    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        total += len(block)
        while next_start + window <= total:
            i = next_start - buf_start
            yield next_start, buf[i : i + window].copy()
            covered = next_start + window
            next_start += hop
        # keep what the next window needs, and the last `window` samples for an end-aligned one
        drop = min(next_start, total - window) - buf_start
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    if total > covered:
        start = max(0, total - window)
        yield start, buf[start - buf_start :].copy()


class EmotionClassifier:
    """A trained ``ser`` model, loaded once, ready to classify audio.

    Use :meth:`load` (or :func:`ser.load_model`) rather than the constructor.

    Attributes
    ----------
    model : keras.Model
        Inputs ``[features (b, t, n_mels), mask (b, t)]``, output logits ``(b, n_classes)``.
    members : list of keras.Model
        The CNNs whose logits ``model`` averages (``training.members`` of the recipe);
        ``[model]`` for a single CNN.
    path : str
        Where the model was loaded from.
    labels : list of str
        Class names in logit order.
    frontend : FrontendConfig
        Log-mel settings the model was trained with.
    info : dict
        Free-form metadata saved with the model (head, recipe, corpus, normalization, ...).
    """

    def __init__(self, model, path: str = "<model>"):

        self.model = model
        self.members = ensemble_members(model)
        self.path = str(path)
        try:
            meta = model.get_layer("ser_metadata")
        except ValueError:
            raise ModelError(
                f"{self.path}: not a ser model (no 'ser_metadata' layer); expected a model.keras written by `ser train`"
            ) from None
        self.labels = [str(label) for label in meta.labels]
        self.info = dict(meta.info)
        if len(self.labels) < 2:
            raise ModelError(f"{self.path}: model lists {len(self.labels)} class(es); expected at least 2")
        try:
            self.frontend = FrontendConfig.from_dict(meta.frontend)
        except (ConfigError, TypeError) as exc:
            raise ModelError(f"{self.path}: bad frontend settings in the model ({exc})") from None
        n_mels = model.inputs[0].shape[-1] if len(model.inputs) == 2 else None
        if n_mels != self.frontend.n_mels:
            raise ModelError(
                f"{self.path}: model input has {n_mels} mel bands but its frontend says "
                f"{self.frontend.n_mels}; expected a model written by `ser train`"
            )
        n_out = model.outputs[0].shape[-1]
        if n_out != len(self.labels):
            raise ModelError(f"{self.path}: model has {n_out} outputs but {len(self.labels)} labels")
        if self.normalization not in NORMALIZATIONS:
            raise ModelError(
                f"{self.path}: unknown feature normalization {self.normalization!r} in the model; "
                f"expected one of {NORMALIZATIONS}"
            )
        #: The functionals head fused with the CNN (:mod:`ser.fusion`), or None.
        self.functionals = None
        if self.info.get("functionals") is not None:
            try:
                self.functionals = FunctionalsHead.from_dict(self.info["functionals"])
            except ModelError as exc:
                raise ModelError(f"{self.path}: {exc}") from None
            if self.functionals.n_classes != len(self.labels):
                raise ModelError(
                    f"{self.path}: functionals head has {self.functionals.n_classes} classes but the "
                    f"model {len(self.labels)}"
                )
        #: ``(mean, std)`` of the speaker reference's functionals (None: the global head).
        self.functionals_reference = None
        self.time_stride, self.freq_stride = conv5_strides(self.members[0])
        self._calls = 0
        self._graph = None
        self._feature_map_model = None
        self.speaker_reference = None
        #: Recordings the batch-norm statistics are adapted to (0: the training statistics).
        self.adapted_files = 0
        #: The labels the model gave the speaker reference's recordings before adapting to them.
        self.reference_labels: list[str] = []
        self._training_batchnorm = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmotionClassifier:
        """Load a ``model.keras`` file, or the ``model.keras`` in a run folder.

        The file is loaded with ``safe_mode=True``: nothing in it is executed.

        Raises
        ------
        ModelError
            Missing path, folder without ``model.keras``, not a Keras archive, corrupted,
            not a ``ser`` model, or written by an incompatible version.
        """
        file = _model_file(path)
        import keras

        import ser.layers  # noqa: F401  (registers the custom layers before deserialising)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = keras.saving.load_model(file, compile=False, safe_mode=True)
        except Exception as exc:  # Keras reports every bad archive its own way
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            saved_with = _saved_keras_version(file)
            version = (
                f"; it was saved with Keras {saved_with}, this is Keras {keras.__version__}"
                if saved_with and saved_with != keras.__version__
                else ""
            )
            raise ModelError(
                f"{file}: cannot load the model ({reason}){version}; expected a model.keras written by "
                "`ser train` with a compatible version of ser"
            ) from None
        if not isinstance(model, keras.Model):
            raise ModelError(f"{file}: holds a {type(model).__name__}, not a model; expected a ser model")
        return cls(model, file)

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) audio is converted to before feature extraction."""
        return self.frontend.sample_rate

    @property
    def head(self) -> str:
        """``"attention"``, ``"average"`` or ``"max"``: the pooling head of the model."""
        from ser.layers import AttentionalPooling

        try:
            layer = self.members[0].get_layer("head")
        except ValueError:
            return str(self.info.get("head", "unknown"))
        if isinstance(layer, AttentionalPooling):
            return "attention"
        try:
            return self.members[0].get_layer("pooling").mode
        except ValueError:
            return str(self.info.get("head", "unknown"))

    @property
    def normalization(self) -> str:
        """The model's feature normalisation, one of :data:`ser.normalization.NORMALIZATIONS` ("global" if unset)."""
        return str(self.info.get("normalization") or "global")

    @property
    def standardizes_input(self) -> bool:
        """Whether :func:`model_features` standardises features by the input's own statistics."""
        return self.normalization in ("utterance", "speaker")

    @property
    def adapt_blocks(self) -> tuple:
        """Conv blocks whose batch-norm statistics a speaker reference re-estimates.

        ``model.adapt_blocks`` of the recipe that trained the model (``ser train`` stores it in
        ``info``); ``()`` for a model whose metadata names none (one made by
        :func:`ser.model.build_model` with other ``info``).
        """
        return tuple(int(b) for b in self.info.get("adapt_blocks", ()))

    def set_speaker_reference(self, audio_list, sample_rate: int | None = None) -> None:
        """Adapt the classifier to one speaker, from a few of their recordings (any emotions).

        Label-free uses of the recordings, as in the recipe's evaluation:

        - a model trained with ``features.normalization = "speaker"`` saw every utterance
          standardised by the statistics of all its speaker's files; inputs are then
          standardised by the statistics of these recordings;
        - a model with :attr:`adapt_blocks` gets the batch-norm statistics of those blocks
          re-estimated from these recordings (:mod:`ser.adaptation`), if there are at least
          :data:`ser.constants.MIN_ADAPTATION_FILES` of them; :attr:`adapted_files` says how
          many were used (0: not adapted);
        - a model with a functionals head (:mod:`ser.fusion`) standardises functionals by
          the statistics of these recordings and uses its per-speaker regression (again with
          at least that many recordings).

        Silent recordings (no sample above :data:`SILENCE_PEAK`) take no part.
        :attr:`reference_labels` records what the model, before adapting, heard in each
        recording that took part (each classified whole, up to
        :data:`REFERENCE_MAX_SECONDS`; one forward pass each).
        ``None`` clears the reference and puts back the training statistics.

        Parameters
        ----------
        audio_list : list of path or np.ndarray, or None
        sample_rate : int or None
            Rate of array inputs.
        """

        if self._training_batchnorm is not None:
            set_batchnorm_state(self.model, self.adapt_blocks, self._training_batchnorm)
            self._training_batchnorm = None
            self.adapted_files = 0
        self.functionals_reference = None
        self.speaker_reference = None
        self.reference_labels = []
        if audio_list is None:
            return

        feats, functionals, heard = [], [], []
        for audio in audio_list:
            if isinstance(audio, np.ndarray):
                if sample_rate is None:
                    raise ConfigError("sample_rate is required when reference audio is an array")
                y = prepare_waveform(audio, sample_rate, self.sample_rate)
            else:
                y, _ = reference_audio(audio, self.sample_rate)
            if is_silent(y):
                continue  # no voice to learn from
            feats.append(model_input(y, self.frontend))
            # what the model hears without the reference: the whole recording, unadapted
            logits = self.logits(normalize(feats[-1:], None, self.normalization)).astype(np.float64)
            if self.functionals is not None:
                functionals.append(self.functionals.functionals(y, self.sample_rate))
                logits = self.functionals.fuse(logits, functionals[-1][None], None)
            heard.append(self.labels[int(np.argmax(logits[0]))])
        if not feats:
            raise ConfigError("the speaker reference needs at least one recording that is not silent")
        self.reference_labels = heard
        mean, var = feature_stats(feats)
        self.speaker_reference = (mean, np.sqrt(var))
        if self.adapt_blocks and len(feats) >= MIN_ADAPTATION_FILES:
            inputs = normalize(feats, None, self.normalization, reference=self.speaker_reference)
            self._training_batchnorm = batchnorm_state(self.model, self.adapt_blocks)
            adapt_batchnorm(self.model, inputs, self.adapt_blocks, multiple=self.time_stride)
            self.adapted_files = len(inputs)
        speaker_head = self.functionals is not None and self.functionals.speaker is not None
        if speaker_head and len(functionals) >= MIN_ADAPTATION_FILES:
            self.functionals_reference = standardization(np.stack(functionals))

    def __repr__(self) -> str:
        ensemble = f", members={len(self.members)}" if len(self.members) > 1 else ""
        return f"EmotionClassifier({self.path!r}, labels={self.labels}, head={self.head!r}{ensemble})"

    def feature_map_models(self) -> list:
        """Per member, its Conv5 map and that map's mask (cached; see :func:`ser.model.feature_map_model`)."""
        if self._feature_map_model is None:
            try:
                self._feature_map_model = [feature_map_model(m) for m in self.members]
            except ValueError:
                raise ModelError(
                    f"{self.path}: cannot find the Conv5 feature map in this model (saved by another "
                    "version of ser?); expected a model written by `ser train` of this version"
                ) from None
        return self._feature_map_model

    def logits(self, features: list[np.ndarray]) -> np.ndarray:
        """Logits of a batch of feature matrices of any lengths.

        Parameters
        ----------
        features : list of np.ndarray [shape=(t_i, n_mels)]
            As :func:`model_features` returns them.

        Returns
        -------
        np.ndarray [shape=(len(features), n_classes), dtype=float32]
        """

        x, m = pad_batch(features, multiple=self.time_stride)
        self._calls += 1
        if self._calls <= EAGER_CALLS:
            out = self.model([x, m], training=False)
        else:
            out = self._compiled()(x, m)
        out = np.asarray(out, dtype=np.float32)
        interrupts.check()  # a Ctrl-C that came during the model call (ser.interrupts)
        if not np.all(np.isfinite(out)):
            raise ModelError(
                f"{self.path}: the model produced NaN or infinite outputs; is the file corrupted?"
            )
        return out

    def probabilities(self, features: list[np.ndarray]) -> np.ndarray:
        """The CNN's class probabilities ``(len(features), n_classes)`` (float64, rows sum to 1).

        Without the functionals head: :meth:`classify` fuses them with it (:meth:`fused`).
        """
        return softmax(self.logits(features))

    @property
    def cnn_weight(self) -> float:
        """The CNN's weight in :meth:`fused` now (1.0 without a functionals head).

        With a speaker reference and a per-speaker regression, the adapted weight.
        """
        if self.functionals is None:
            return 1.0
        return self.functionals.weight_for(self.functionals_reference)

    def fused(self, logits: np.ndarray, waveforms: list[np.ndarray]) -> np.ndarray:
        """The model's probabilities: CNN ``logits`` fused with the functionals of ``waveforms``.

        One waveform per row of ``logits`` (mono, at :attr:`sample_rate`). A model without a
        functionals head gives ``softmax(logits)``. With a speaker reference
        (:meth:`set_speaker_reference`), the per-speaker regression is used. A silent
        waveform (a stretch of silence in long audio: no sample above :data:`SILENCE_PEAK`)
        has no meaningful functionals and gets the CNN's probabilities alone.
        """
        if self.functionals is None:
            return softmax(logits)
        logits = np.asarray(logits, dtype=np.float64)
        out = softmax(logits)
        heard = [i for i, w in enumerate(waveforms) if not is_silent(w)]
        if heard:
            x = np.stack([self.functionals.functionals(waveforms[i], self.sample_rate) for i in heard])
            out[heard] = softmax(self.functionals.fuse(logits[heard], x, self.functionals_reference))
        return out

    def _compiled(self):
        """The model call traced once for any batch size and length (TensorFlow backend)."""
        if self._graph is None:
            self._graph = forward_function(self.model)
        return self._graph

    def classify(
        self,
        audio,
        sample_rate: int | None = None,
        *,
        window: float | None = None,
        hop: float | None = None,
    ) -> Prediction:
        """Classify a file or a waveform.

        Parameters
        ----------
        audio : str, PathLike or np.ndarray [shape=(n,) or (n, channels)]
            An audio file, or samples (then ``sample_rate`` is required).
        sample_rate : int or None
            Rate of an array in Hz; not used with files.
        window, hop : float or None
            Sliding-window length and hop in seconds. Without them, audio up to
            :data:`WHOLE_MAX_DURATION` s is classified whole and longer audio in windows of
            :data:`DEFAULT_WINDOW` s every :data:`DEFAULT_HOP` s. Audio no longer than one
            window is always classified whole; a hop alone changes only the hop of audio
            over :data:`WHOLE_MAX_DURATION` s.

        Returns
        -------
        Prediction
            For windowed input, ``scores`` is the mean of the windows' probabilities and
            ``segments`` the windows in time order.

        Raises
        ------
        AudioError
            Unreadable, empty, too short or non-finite audio.
        ConfigError
            Bad window settings, or an array without its sample rate.
        """

        # audio up to one window is classified whole; with no window given (a hop alone sets
        # only the hop of longer audio's windows), up to WHOLE_MAX_DURATION
        whole = WHOLE_MAX_DURATION if window is None else window
        windowed = window is not None or hop is not None
        if windowed:
            window, hop = check_window(window, hop)
        sr = self.sample_rate
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise ConfigError(
                    f"sample_rate is for arrays; a file's rate is read from the file. Received: sample_rate={sample_rate}"
                )
            name = str(audio)
            info = audio_info(audio)
            # a file no longer than one window is classified whole (trimmed of leading and
            # trailing silence, as in training), whether or not windows were asked for
            if info.duration <= whole:
                return self._classify_whole(load_audio(audio, sr, max_duration=None), name)
            blocks = iter_audio_blocks(audio, sr, block_seconds=STREAM_BLOCK_SECONDS)
        elif isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise ConfigError(
                    "sample_rate is required when audio is an array. Received: sample_rate=None"
                )
            name = None
            y = prepare_waveform(audio, sample_rate, sr)
            if y.size <= whole * sr:
                return self._classify_whole(y, name)
            blocks = [y]
        else:
            raise ConfigError(
                f"audio must be a file path or a numpy array of samples. Received: {type(audio).__name__}"
            )
        if not windowed:
            window, hop = DEFAULT_WINDOW, DEFAULT_HOP
        return self._classify_windows(blocks, name, window, hop)

    def _classify_whole(self, y: np.ndarray, name: str | None) -> Prediction:
        if is_silent(y):
            raise _silent(name)

        probs = self.fused(self.logits([model_features(self, y)]), [y])[0]
        scores = self._scores(probs)
        return Prediction(
            file=name,
            duration=y.size / self.sample_rate,
            label=self.labels[int(np.argmax(probs))],
            scores=scores,
            speech=holds_speech([voiced_fraction(y, self.sample_rate)]),
        )

    def _classify_windows(self, blocks, name: str | None, window: float, hop: float) -> Prediction:
        sr = self.sample_rate
        win_n = max(1, int(round(window * sr)))
        hop_n = max(1, int(round(hop * sr)))

        segments: list[Segment] = []
        window_probs: list[np.ndarray] = []
        voiced: list[float] = []
        end = 0
        batch: list[tuple[int, np.ndarray]] = []

        def flush():
            logits = self.logits([model_features(self, w, trim=False) for _, w in batch])
            probs = self.fused(logits, [w for _, w in batch])
            for (start, w), p in zip(batch, probs, strict=True):
                segments.append(
                    Segment(
                        start=round(start / sr, 6),
                        end=round((start + w.size) / sr, 6),
                        label=self.labels[int(np.argmax(p))],
                        scores=self._scores(p),
                    )
                )
            window_probs.extend(probs)
            voiced.extend(voiced_fraction(w, sr) for _, w in batch)
            batch.clear()

        heard = False
        for start, w in iter_windows(blocks, win_n, hop_n):
            heard = heard or not is_silent(w)
            if batch and sum(b.size for _, b in batch) + w.size > BATCH_SECONDS * sr:
                flush()  # (a window longer than BATCH_SECONDS goes alone)
            batch.append((start, w))
            end = max(end, start + w.size)
            if len(batch) == BATCH_WINDOWS:
                flush()
        if batch:
            flush()
        if not heard:
            raise _silent(name)
        mean = window_vote(window_probs, voiced)
        segments = [
            replace(s, counted=bool(c)) for s, c in zip(segments, counted_windows(voiced), strict=True)
        ]
        return Prediction(
            file=name,
            duration=end / sr,
            label=self.labels[int(np.argmax(mean))],
            scores=self._scores(mean),
            segments=segments,
            speech=holds_speech(voiced),
        )

    def _scores(self, probs: np.ndarray) -> dict:
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}


def _silent(name: str | None, span: tuple[float, float] | None = None) -> AudioError:
    """The error for silent audio (or a silent ``span`` of it, in seconds)."""
    where, expected = ("silent", "a recording of speech")
    if span is not None:
        where, expected = f"silent from {span[0]:g} to {span[1]:g} s", "a range holding speech"
    return AudioError(
        f"{name or '<array>'}: {where} (no sample above {20 * math.log10(SILENCE_PEAK):.0f} dB full "
        f"scale); expected {expected}"
    )


def _model_file(path: str | os.PathLike) -> str:
    """Resolve a model path (file or run folder) and check it looks like a Keras archive."""
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL_FILENAME).is_file():
            if (p / "results.json").is_file() or (p / "folds").is_dir():
                raise ModelError(
                    f"{p}: run folder without a final {MODEL_FILENAME} (trained with --no-final, "
                    "or not all folds done); expected a run folder holding one: rerun its "
                    "`ser train` command without --no-final to train it"
                )
            raise ModelError(
                f"{p}: folder holds no {MODEL_FILENAME}; expected a model.keras file or a run folder"
            )
        p = p / MODEL_FILENAME
    elif not p.exists():
        raise ModelError(f"{p}: not found; expected a model.keras file or a run folder holding one")
    elif not p.is_file():
        raise ModelError(f"{p}: not a regular file; expected a model.keras file")
    if p.suffix != ".keras":
        raise ModelError(f"{p}: not a .keras file; expected a model.keras written by `ser train`")
    try:
        with zipfile.ZipFile(p) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelError(
            f"{p}: not a Keras model archive ({reason}); the file is truncated, corrupted or not a model"
        ) from None
    if "config.json" not in names:
        raise ModelError(f"{p}: zip archive without config.json; not a Keras model")
    return str(p)


def _saved_keras_version(file: str) -> str | None:
    """The Keras version recorded in a ``.keras`` archive, if readable."""
    try:
        with zipfile.ZipFile(file) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version")) or None
    except Exception:
        return None


def _error_text(name: str, exc: Exception) -> str:
    """An error's message without the file name it starts with (the caller names the file)."""
    message = str(exc)
    for prefix in (f"{name}: ", f"{Path(name)}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _format_line(prediction: Prediction, top: int) -> str:
    best = ", ".join(f"{label} {p:.2f}" for label, p in prediction.top(top))
    line = f"{prediction.file}: {best}"
    if prediction.segments:
        n, counted = len(prediction.segments), sum(s.counted for s in prediction.segments)
        if counted < n:
            left = n - counted
            line += (
                f"  (mean of {counted} of {n} windows over {prediction.duration:.1f} s; "
                f"{left} window{'s' if left != 1 else ''} without speech left out)"
            )
        else:
            line += f"  (mean of {n} window{'s' if n != 1 else ''} over {prediction.duration:.1f} s)"
    return line


def audio_notes(classifier: EmotionClassifier, path) -> list[str]:
    """Notes about a file that is classified all the same: cut short (see
    :meth:`ser.audio.AudioInfo.truncation_note`) or band-limited (:func:`band_limit_note`)."""

    try:
        info = audio_info(path)
    except SerError:
        return []  # the caller reports the file's own error
    notes = [info.truncation_note(), band_limit_note(classifier, path, info.sample_rate)]
    return [n for n in notes if n is not None]


def band_limit_note(classifier: EmotionClassifier, path, rate: int) -> str | None:
    """A note for a file recorded at a rate too low for the model's mel bands, else None.

    A file at 8 kHz holds nothing above 4 kHz, where a model of the default frontend has
    mel bands up to 8 kHz: it is classified all the same (resampled), but those bands are
    empty, as they never were in training. ``rate``: the file's sample rate.
    """
    fmax = float(classifier.frontend.fmax)
    if rate / 2 >= 0.95 * fmax:
        return None
    return (
        f"note: {path}: recorded at {rate} Hz, so nothing above {rate / 2000:g} kHz; the model hears "
        f"up to {fmax / 1000:g} kHz and was trained on full-band audio: expect lower accuracy"
    )


def reference_audio(path, sample_rate: int) -> tuple[np.ndarray, bool]:
    """A speaker-reference recording at ``sample_rate``: the whole file, or its first
    :data:`REFERENCE_MAX_SECONDS` that are not silent (then the flag is True), so memory
    stays bounded whatever the files' length."""

    if audio_info(path).duration <= REFERENCE_MAX_SECONDS:
        return load_audio(path, sample_rate, max_duration=None), False
    cap, first = int(REFERENCE_MAX_SECONDS * sample_rate), None
    for block in iter_audio_blocks(path, sample_rate, block_seconds=REFERENCE_MAX_SECONDS):
        block = block[:cap]
        first = block if first is None else first
        if not is_silent(block):
            return block, True
    return first, True


def _warn_if_one_emotion(heard: list[str]) -> None:
    """A note when the unadapted model heard most of a speaker's recordings as one class
    (``heard``: :attr:`EmotionClassifier.reference_labels`).

    Adaptation takes what a speaker's recordings share as their voice; recordings of one
    emotion would have that emotion taken for the voice and erased. Labels are unknown, so
    the unadapted predictions stand in for them.
    """
    label, count = max(((c, heard.count(c)) for c in set(heard)), key=lambda lc: lc[1])
    if count >= ONE_EMOTION_SHARE * len(heard):
        print(
            f"note: --same-speaker: without adaptation the model hears {count} of {len(heard)} "
            f"recordings as {label}; adaptation assumes several emotions and erases one they all "
            "share: if they are mostly one emotion, run without --same-speaker",
            file=sys.stderr,
            flush=True,
        )


def adapt_to_speaker(classifier: EmotionClassifier, audio_paths) -> dict[str, str]:
    """``--same-speaker``: adapt ``classifier`` to the usable ones of one speaker's files.

    Files that cannot be classified (unreadable, too short, non-finite, silent) are skipped;
    the caller reports them. A line on stderr says what was done: adapted to how many
    recordings (and how many were left out), or too few to adapt to.

    Returns
    -------
    dict
        Path -> error message (without the path) of each file skipped; empty for a model
        that does not adapt (its files are not read, and a note says so).
    """
    if not (
        classifier.normalization == "speaker" or classifier.adapt_blocks or classifier.functionals is not None
    ):
        print(
            f"note: --same-speaker: {classifier.path} has nothing to adapt to a speaker (no batch-norm "
            "blocks to adapt, no functionals head, no per-speaker normalisation); ignored",
            file=sys.stderr,
            flush=True,
        )
        return {}

    # Only files that could be classified take part: an unreadable, too short, non-finite or
    # silent file would otherwise spoil the statistics the other files are scored with.
    usable, skipped, cut = [], {}, 0
    for path in dict.fromkeys(str(p) for p in audio_paths):
        try:
            y, truncated = reference_audio(path, classifier.sample_rate)
            if is_silent(y):
                raise _silent(path)
            usable.append(y)
            cut += truncated
        except SerError as exc:
            skipped[path] = _error_text(path, exc)
    if usable:
        classifier.set_speaker_reference(usable, sample_rate=classifier.sample_rate)
    if len(usable) >= MIN_ADAPTATION_FILES:
        _warn_if_one_emotion(classifier.reference_labels)
    if classifier.adapt_blocks or classifier.functionals is not None:
        blocks = ", ".join(map(str, classifier.adapt_blocks))
        done = []
        if classifier.adapted_files:
            done.append(f"batch-norm statistics of Conv blocks {blocks} re-estimated")
        if classifier.functionals_reference is not None:
            done.append("functionals standardised")
        note = (
            f"note: adapted to this speaker: {' and '.join(done)} from {len(usable)} recordings"
            if done
            else f"note: --same-speaker: {len(usable)} usable recording(s) are too few to adapt "
            f"to (at least {MIN_ADAPTATION_FILES}, of several emotions); using the model without "
            "speaker adaptation"
        )
        if skipped:
            note += f" ({len(skipped)} file(s) that cannot be classified left out)"
        if cut:
            note += f" ({REFERENCE_MAX_SECONDS:.0f} s of each of {cut} longer file(s))"
        print(note, file=sys.stderr, flush=True)
    return skipped


def classify_command(
    model_path: str,
    audio_paths: list[str],
    *,
    as_json: bool = False,
    window: float | None = None,
    hop: float | None = None,
    top: int = 1,
    same_speaker: bool = False,
) -> int:
    """``ser classify``: classify files, one line (or JSON object) per file.

    A file that cannot be classified is reported (a ``{"file", "error"}`` object in JSON, a
    line on stderr otherwise) and the other files are still classified. With
    ``same_speaker``, the files are taken to be one speaker's: a speaker-normalised model uses
    their joint statistics, and a model with speaker adaptation re-estimates its batch-norm
    statistics from them (see :meth:`EmotionClassifier.set_speaker_reference`).

    Returns
    -------
    int
        0 if every file was classified, 1 if any failed.

    Raises
    ------
    ModelError
        The model cannot be loaded.
    ConfigError
        Bad ``window``, ``hop`` or ``top``.
    """
    if window is not None or hop is not None:
        check_window(window, hop)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer. Received: top={top!r}")
    classifier = EmotionClassifier.load(model_path)
    if same_speaker:
        adapt_to_speaker(classifier, audio_paths)
    elif classifier.normalization == "speaker":
        print(
            "note: this model was trained with per-speaker normalisation; without --same-speaker each "
            "file is normalised by its own statistics (less accurate)",
            file=sys.stderr,
            flush=True,
        )
    results = []
    failed = 0
    try:
        failed = _classify_each(classifier, audio_paths, results, as_json, window, hop, top)
    except KeyboardInterrupt:
        if as_json:  # what was finished is not lost: valid JSON of the files done so far
            print(json.dumps(results, indent=2), flush=True)
        raise
    if as_json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _classify_each(classifier, audio_paths, results: list, as_json: bool, window, hop, top) -> int:
    """Classify each file in turn (JSON objects appended to ``results``); the number failed."""
    failed = 0
    for path in audio_paths:
        for note in audio_notes(classifier, path):
            print(note, file=sys.stderr, flush=True)
        try:
            prediction = classifier.classify(path, window=window, hop=hop)
        except SerError as exc:
            failed += 1
            message = _error_text(str(path), exc)
            if as_json:
                results.append({"file": str(path), "error": message})
            else:
                print(f"{path}: error: {message}", file=sys.stderr, flush=True)
            continue
        if not prediction.speech:
            print(f"note: {path}: {NO_SPEECH_NOTE}", file=sys.stderr, flush=True)
        if as_json:
            results.append(prediction.to_dict())
        else:
            print(_format_line(prediction, top), flush=True)
    return failed
