"""A trained model, loaded: logits, fused probabilities, predictions (KerasHub's Task role).

A ``model.keras`` written by ``ser train`` is self-describing (see :mod:`ser.model`): its
``ser_metadata`` layer holds the class names, the log-mel settings, how the features were
normalised and the format version, so :class:`EmotionClassifier` needs nothing but the file.
Its input comes from :mod:`ser.preprocessor`; long audio goes through :mod:`ser.windows`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ser import interrupts
from ser.adaptation import MIN_ADAPTATION_FILES, adapt_batchnorm, batchnorm_state, set_batchnorm_state
from ser.audio import is_silent
from ser.errors import ConfigError, ModelError
from ser.features import FrontendConfig, model_input, pad_batch, voiced_fraction
from ser.fusion import FunctionalsHead
from ser.model import ensemble_members, feature_map_model
from ser.normalization import NORMALIZATIONS, feature_stats, normalize, standardization
from ser.preprocessor import audio_source, model_features, reference_audio, silent_error
from ser.runtime import conv5_strides, forward_function, softmax
from ser.saved_model import load_keras_model, metadata_layer
from ser.windows import (
    DEFAULT_HOP,
    DEFAULT_WINDOW,
    STREAM_BLOCK_SECONDS,
    WHOLE_MAX_DURATION,
    check_window,
    holds_speech,
    window_probabilities,
)

#: The model is called eagerly this many times, then through a traced graph (``tf.function``),
#: so that one-off calls (the ``ser classify`` command) skip the tracing cost and repeated
#: calls (many files, long files, a server) run several times faster.
EAGER_CALLS = 2

#: What ``ser classify`` and ``ser attention`` say of audio without voiced speech.
NO_SPEECH_NOTE = (
    "no voiced speech found (noise, hum, music or whispering?): the model was trained on speech, "
    "so its label is a guess"
)


@dataclass(frozen=True)
class Segment:
    """One window of a long recording: its span in seconds and its class probabilities.

    ``counted`` is False for a window without speech (a pause or noise, see
    :func:`ser.windows.counted_windows`): its label is what the model makes of it, but it
    does not count toward the recording's label.
    """

    start: float
    end: float
    label: str
    scores: dict
    counted: bool = True

    def to_dict(self) -> dict:
        """``{"start", "end", "label", "scores", "counted"}``."""
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


def _head_of(member, path: str) -> str:
    """``"attention"``, ``"average"`` or ``"max"``: the pooling head of a model of
    :func:`ser.model.build_model`."""
    from ser.layers import AttentionalPooling

    try:
        if isinstance(member.get_layer("head"), AttentionalPooling):
            return "attention"
        return str(member.get_layer("pooling").mode)
    except ValueError:
        raise ModelError(
            f"{path}: no pooling head found (layers 'head' and 'pooling'); expected a model written by `ser train`"
        ) from None


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
    head : str
        ``"attention"``, ``"average"`` or ``"max"``: the pooling head.
    functionals : FunctionalsHead or None
        The functionals head fused with the CNN (:mod:`ser.fusion`).
    time_stride, freq_stride : int
        Frames and mel bands per Conv5 cell (:func:`ser.runtime.conv5_strides`).

    Raises
    ------
    ModelError
        Not a ``ser`` model of this format version, or metadata that does not fit the model.
    """

    def __init__(self, model, path: str = "<model>"):
        self.model = model
        self.members = ensemble_members(model)
        self.path = str(path)
        meta = metadata_layer(model, self.path)
        self.labels = [str(label) for label in meta.labels]
        self.info = dict(meta.info)
        try:
            self.frontend = FrontendConfig.from_dict(meta.frontend)
        except (ConfigError, TypeError) as exc:
            raise ModelError(f"{self.path}: bad frontend settings in the model ({exc})") from None
        self._check_shapes()
        self.head = _head_of(self.members[0], self.path)
        self.functionals = self._functionals_head()
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

    def _check_shapes(self) -> None:
        """Check the labels, mel bands and normalisation the metadata gives against the model."""
        if len(self.labels) < 2:
            raise ModelError(f"{self.path}: model lists {len(self.labels)} class(es); expected at least 2")
        n_mels = self.model.inputs[0].shape[-1] if len(self.model.inputs) == 2 else None
        if n_mels != self.frontend.n_mels:
            raise ModelError(
                f"{self.path}: model input has {n_mels} mel bands but its frontend says "
                f"{self.frontend.n_mels}; expected a model written by `ser train`"
            )
        n_out = self.model.outputs[0].shape[-1]
        if n_out != len(self.labels):
            raise ModelError(f"{self.path}: model has {n_out} outputs but {len(self.labels)} labels")
        if self.normalization not in NORMALIZATIONS:
            raise ModelError(
                f"{self.path}: unknown feature normalization {self.normalization!r} in the model; "
                f"expected one of {NORMALIZATIONS}"
            )

    def _functionals_head(self) -> FunctionalsHead | None:
        """The functionals head saved in ``info``, checked against the labels (None: none)."""
        if self.info.get("functionals") is None:
            return None
        try:
            head = FunctionalsHead.from_dict(self.info["functionals"])
        except ModelError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        if head.n_classes != len(self.labels):
            raise ModelError(
                f"{self.path}: functionals head has {head.n_classes} classes but the model {len(self.labels)}"
            )
        return head

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
        model, file = load_keras_model(path)
        return cls(model, file)

    def __repr__(self) -> str:
        ensemble = f", members={len(self.members)}" if len(self.members) > 1 else ""
        return f"EmotionClassifier({self.path!r}, labels={self.labels}, head={self.head!r}{ensemble})"

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) audio is converted to before feature extraction."""
        return self.frontend.sample_rate

    @property
    def normalization(self) -> str:
        """The model's feature normalisation, one of :data:`ser.normalization.NORMALIZATIONS`
        ("global" where ``info`` names none)."""
        return str(self.info.get("normalization") or "global")

    @property
    def standardizes_input(self) -> bool:
        """Whether :func:`ser.preprocessor.model_features` standardises features by the
        input's own statistics."""
        return self.normalization in ("utterance", "speaker")

    @property
    def adapt_blocks(self) -> tuple:
        """Conv blocks whose batch-norm statistics a speaker reference re-estimates.

        ``model.adapt_blocks`` of the recipe that trained the model (``ser train`` stores it in
        ``info``); ``()`` where ``info`` names none (a model made by
        :func:`ser.model.build_model` with other ``info``).
        """
        return tuple(int(b) for b in self.info.get("adapt_blocks", ()))

    @property
    def bottom_up_mode(self) -> str:
        """``"linear"`` or ``"softmax"`` (attention head), ``"constant"`` (pooling heads)."""
        if self.head != "attention":
            return "constant"
        return str(self.members[0].get_layer("head").bottom_up)

    @property
    def adapted_to(self) -> int:
        """Recordings of one speaker the classifier is adapted to (0: none, or too few to adapt)."""
        adapted = (
            self.adapted_files
            or self.functionals_reference is not None
            or (self.normalization == "speaker" and self.speaker_reference is not None)
        )
        return len(self.reference_labels) if adapted else 0

    @property
    def cnn_weight(self) -> float:
        """The CNN's weight in :meth:`fused` now (1.0 without a functionals head).

        With a speaker reference and a per-speaker regression, the adapted weight.
        """
        if self.functionals is None:
            return 1.0
        return self.functionals.weight_for(self.functionals_reference)

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

        Silent recordings (no sample above :data:`ser.constants.SILENCE_PEAK`) take no part.
        :attr:`reference_labels` records what the model, before adapting, heard in each
        recording that took part (each classified whole, up to
        :data:`ser.preprocessor.REFERENCE_MAX_SECONDS`; one forward pass each).
        ``None`` clears the reference and puts back the training statistics.

        Parameters
        ----------
        audio_list : list of path or np.ndarray, or None
        sample_rate : int or None
            Rate of array inputs.

        Raises
        ------
        ConfigError
            Every recording is silent, or an array comes without ``sample_rate``.
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
            y, _ = reference_audio(audio, self.sample_rate, sample_rate)
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

    def _check_finite(self, out: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(out)):
            raise ModelError(
                f"{self.path}: the model produced NaN or infinite outputs; is the file corrupted?"
            )
        return out

    def logits(self, features: list[np.ndarray]) -> np.ndarray:
        """Logits of a batch of feature matrices of any lengths.

        Parameters
        ----------
        features : list of np.ndarray [shape=(t_i, n_mels)]
            As :func:`ser.preprocessor.model_features` returns them.

        Returns
        -------
        np.ndarray [shape=(len(features), n_classes), dtype=float32]
        """
        x, m = pad_batch(features, multiple=self.time_stride)
        self._calls += 1
        if self._calls <= EAGER_CALLS:
            out = self.model([x, m], training=False)
        else:
            if self._graph is None:
                self._graph = forward_function(self.model)
            out = self._graph(x, m)
        out = np.asarray(out, dtype=np.float32)
        interrupts.check()  # a Ctrl-C that came during the model call (ser.interrupts)
        return self._check_finite(out)

    def probabilities(self, features: list[np.ndarray]) -> np.ndarray:
        """The CNN's class probabilities ``(len(features), n_classes)`` (float64, rows sum to 1).

        Without the functionals head: :meth:`classify` fuses them with it (:meth:`fused`).
        """
        return softmax(self.logits(features))

    def fused(self, logits: np.ndarray, waveforms: list[np.ndarray]) -> np.ndarray:
        """The model's probabilities: CNN ``logits`` fused with the functionals of ``waveforms``.

        One waveform per row of ``logits`` (mono, at :attr:`sample_rate`). A model without a
        functionals head gives ``softmax(logits)``. With a speaker reference
        (:meth:`set_speaker_reference`), the per-speaker regression is used. A silent
        waveform (a stretch of silence in long audio) has no meaningful functionals and gets
        the CNN's probabilities alone.

        Returns
        -------
        np.ndarray [shape=(len(waveforms), n_classes), dtype=float64]
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

    def feature_map_models(self) -> list:
        """Per member, its Conv5 map and that map's mask (cached; see :func:`ser.model.feature_map_model`)."""
        if self._feature_map_model is None:
            try:
                self._feature_map_model = [feature_map_model(m) for m in self.members]
            except ValueError:
                raise ModelError(
                    f"{self.path}: cannot find the Conv5 feature map in this model; expected a model "
                    "written by `ser train`"
                ) from None
        return self._feature_map_model

    def head_maps(self, features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the trunk, then the head eagerly with its maps (the attention sub-model).

        For the pooling heads, the maps are class activation maps: the dense layer applied at
        every position (top-down) and a constant 1 (bottom-up).

        Parameters
        ----------
        features : list of np.ndarray [shape=(t_i, n_mels)]

        Returns
        -------
        logits : np.ndarray [shape=(b, n_classes), dtype=float64]
            Mean over the members of an ensemble.
        top_down : np.ndarray [shape=(b, t', f', n_classes * members * rank)]
            An ensemble's maps are stacked along the rank axis (member ``j``'s rank ``r`` at
            ``j * rank + r``), so each class keeps its channels together.
        bottom_up : np.ndarray [shape=(b, t', f', members * rank)]
        """
        x, m = pad_batch(features, multiple=self.time_stride)
        all_logits, all_td, all_bu = [], [], []
        for member, fmap in zip(self.members, self.feature_map_models(), strict=True):
            X, mask = fmap([x, m], training=False)
            head = member.get_layer("head")
            if self.head == "attention":
                logits, maps = head(X, mask=mask, return_attention=True)
                top_down = np.asarray(maps["top_down"])
                bottom_up = np.asarray(maps["bottom_up"])
            else:
                logits = head(member.get_layer("pooling")(X, mask=mask))
                kernel, bias = (np.asarray(w) for w in head.get_weights())
                valid = np.asarray(mask, dtype=np.float32)[:, :, None, None]
                top_down = (np.einsum("btfc,ck->btfk", np.asarray(X), kernel) + bias) * valid
                bottom_up = np.ones(top_down.shape[:3] + (1,), dtype=np.float32) * valid
            rank = bottom_up.shape[-1]
            all_logits.append(np.asarray(logits, dtype=np.float64))
            interrupts.check()
            all_td.append(top_down.reshape(top_down.shape[:3] + (-1, rank)))
            all_bu.append(bottom_up)
        logits = self._check_finite(np.mean(all_logits, axis=0))
        top_down = np.concatenate(all_td, axis=-1)
        return logits, top_down.reshape(top_down.shape[:3] + (-1,)), np.concatenate(all_bu, axis=-1)

    def _scores(self, probs: np.ndarray) -> dict:
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}

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
            :data:`ser.windows.WHOLE_MAX_DURATION` s is classified whole and longer audio in
            windows of :data:`ser.windows.DEFAULT_WINDOW` s every
            :data:`ser.windows.DEFAULT_HOP` s. Audio no longer than one window is always
            classified whole; a hop alone changes only the hop of longer audio.

        Returns
        -------
        Prediction
            For windowed input, ``scores`` is the mean of the windows' probabilities (those
            with speech) and ``segments`` the windows in time order.

        Raises
        ------
        AudioError
            Unreadable, empty, too short, silent or non-finite audio.
        ConfigError
            Bad window settings, or an array without its sample rate.
        """
        # audio up to one window is classified whole (trimmed of leading and trailing silence,
        # as in training); with no window given, up to WHOLE_MAX_DURATION
        whole = WHOLE_MAX_DURATION if window is None else window
        windowed = window is not None or hop is not None
        if windowed:
            window, hop = check_window(window, hop)
        source = audio_source(audio, sample_rate, self.sample_rate)
        if source.no_longer_than(whole):
            return self.predict_whole(source.waveform(), source.name)
        if not windowed:
            window, hop = DEFAULT_WINDOW, DEFAULT_HOP
        return self.predict_windows(source.blocks(STREAM_BLOCK_SECONDS), source.name, window, hop)

    def predict_whole(self, y: np.ndarray, name: str | None = None, *, logits=None) -> Prediction:
        """The prediction of one waveform classified whole.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
            Mono float32 at :attr:`sample_rate`.
        name : str or None
            The file it came from.
        logits : np.ndarray [shape=(1, n_classes)] or None
            The CNN's logits of ``model_features(self, y)`` where the caller already has them
            (the attention maps do); computed otherwise.

        Raises
        ------
        AudioError
            ``y`` is silent.
        """
        if is_silent(y):
            raise silent_error(name)
        if logits is None:
            logits = self.logits([model_features(self, y)])
        probs = self.fused(logits, [y])[0]
        return Prediction(
            file=name,
            duration=y.size / self.sample_rate,
            label=self.labels[int(np.argmax(probs))],
            scores=self._scores(probs),
            speech=holds_speech([voiced_fraction(y, self.sample_rate)]),
        )

    def predict_windows(
        self, blocks: Iterable[np.ndarray], name: str | None, window: float, hop: float
    ) -> Prediction:
        """The prediction of a stream of blocks in sliding windows (:mod:`ser.windows`).

        Parameters
        ----------
        blocks : iterable of np.ndarray [shape=(n_i,)]
            Consecutive pieces of one waveform at :attr:`sample_rate`.
        name : str or None
        window, hop : float
            Seconds, checked (:func:`ser.windows.check_window`).

        Raises
        ------
        AudioError
            Every window is silent.
        """
        sr = self.sample_rate

        def probabilities(waveforms):
            return self.fused(
                self.logits([model_features(self, w, trim=False) for w in waveforms]), waveforms
            )

        scored = window_probabilities(blocks, sr, window, hop, probabilities, name=name)
        segments = [
            Segment(
                start=round(a / sr, 6),
                end=round(b / sr, 6),
                label=self.labels[int(np.argmax(p))],
                scores=self._scores(p),
                counted=bool(c),
            )
            for a, b, p, c in zip(scored.starts, scored.ends, scored.probs, scored.counted(), strict=True)
        ]
        mean = scored.vote()
        return Prediction(
            file=name,
            duration=scored.end / sr,
            label=self.labels[int(np.argmax(mean))],
            scores=self._scores(mean),
            segments=segments,
            speech=holds_speech(scored.voiced),
        )
