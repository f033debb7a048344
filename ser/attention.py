"""Attention maps: where in the spectrogram the model heard the emotion, and pictures of it.

Attentional pooling scores class ``k`` as the inner product, over the Conv5 positions, of a
class-specific *top-down* map ``t_k`` and a class-agnostic *bottom-up* map ``h`` (see
:mod:`ser.layers`). :func:`compute_attention` returns both maps and their product on the
Conv5 grid and upsampled to the spectrogram's frames and mel bands; :func:`plot_attention`
draws them under the spectrogram. :func:`occlusion_map` measures, for comparison, what the
network's output depends on: the fall of the logit when each cell's input region is hidden.

For the baseline heads (masked average or max pooling followed by a dense layer) the maps
are class activation maps: ``t_k`` is the dense layer applied at every position and ``h``
is the constant 1 (for the average head, exactly the special case ``h = 1`` of attentional
pooling; for the max head the logit uses the maximum of the map, not its mean).

Audio up to :data:`ser.inference.WHOLE_MAX_DURATION` seconds goes through the model in one
pass, as in classification; a longer range is cut into consecutive windows of about
:data:`ser.inference.DEFAULT_WINDOW` seconds whose maps are stitched along time, so the
model's memory stays bounded (its label is still classify's, from overlapping windows).
One figure shows at most :data:`MAX_ATTENTION_DURATION` seconds; choose a range
(``start``, ``end``) within longer files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser import interrupts
from ser.audio import audio_info, is_silent, prepare_waveform, read_mono
from ser.constants import MAX_LOAD_DURATION, MIN_DURATION
from ser.errors import AudioError, ConfigError, ModelError
from ser.features import logmel, pad_batch, trim_bounds, voiced_fraction
from ser.inference import (
    BATCH_WINDOWS,
    DEFAULT_WINDOW,
    NO_SPEECH_NOTE,
    WHOLE_MAX_DURATION,
    EmotionClassifier,
    _error_text,
    _silent,
    adapt_to_speaker,
    audio_notes,
    counted_windows,
    holds_speech,
    model_features,
)
from ser.io import probe_writable, write_atomically
from ser.runtime import forward_function

#: Longest stretch of audio (seconds) one attention figure shows.
MAX_ATTENTION_DURATION = MAX_LOAD_DURATION

#: Candidate frequency ticks of the figure, in Hz (those on the axis and not crowded are used).
FREQ_TICKS_HZ = (100, 200, 300, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000)

#: The figure's t·h colours span +-this percentile of |t·h| over the Conv5 cells; stronger
#: cells get the end colours, so one strong cell does not wash out the rest.
PRODUCT_COLOR_PERCENTILE = 98.0

#: Occluded copies of the input per forward pass of :func:`occlusion_map`.
OCCLUSION_BATCH = 32


@dataclass(frozen=True, eq=False)
class AttentionMaps:
    """The maps of one input, on the Conv5 grid and on the spectrogram's axes.

    Attributes
    ----------
    spectrogram : np.ndarray [shape=(frames, n_mels)]
        Log-mel spectrogram (:func:`ser.features.logmel`, before any normalisation).
    times : np.ndarray [shape=(frames,)]
        Centre of each frame in seconds from the start of the file.
    freqs : np.ndarray [shape=(n_mels,)]
        Centre frequency of each mel band in Hz.
    bottom_up : np.ndarray [shape=(t', f', rank)]
        Class-agnostic map ``h`` (ones for pooling heads), zero on padding. For an ensemble
        of ``members`` models, ``rank`` counts the maps of all members (member ``j``'s
        rank-``r`` map is channel ``j * rank_per_member + r``).
    top_down : np.ndarray [shape=(t', f', n_classes * rank)]
        Class maps ``t_{k,r}`` of every class, channel ``k * rank + r``.
    product : np.ndarray [shape=(t', f')]
        ``sum_r t_{k,r} * h_r / members`` for the explained class ``k``: its logit is the
        mean of this over the valid positions (linear bottom-up and average head) or its
        sum (softmax bottom-up), per window. For an ensemble this is the mean of the
        members' products, as its logit is the mean of theirs.
    bottom_up_up, top_down_up, product_up : np.ndarray [shape=(frames, n_mels)]
        ``bottom_up`` summed over rank, ``top_down`` of the explained class summed over
        rank (both divided by ``members``: means over the members of an ensemble), and
        ``product``, each repeated over the frames and bands its Conv5 cell covers.
    labels : list of str
    label : str
        Predicted class. For a stitched range, what :meth:`EmotionClassifier.classify`
        gives the range: the mean over its overlapping windows, those without speech left out.
    probability : float
        Probability of ``label``.
    explained_class : str
        Class whose top-down map and product are shown.
    scores : dict
        Class -> probability.
    file : str or None
    start, end : float
        The range shown, in seconds.
    head : str
        ``"attention"``, ``"average"`` or ``"max"``.
    bottom_up_mode : str
        ``"linear"``, ``"softmax"`` or ``"constant"`` (pooling heads).
    time_stride, freq_stride : int
        Frames and mel bands per Conv5 cell.
    window_starts : list of float
        Start (s) of each window stitched together (one entry for a single pass).
    window_counted : list of bool
        Per window, False for one without speech (a pause or noise, see
        :func:`ser.inference.counted_windows`), drawn greyed out; ``ser classify`` leaves
        such stretches out of the label.
    speech : bool
        False where the audio holds no voiced speech (as :attr:`ser.inference.Prediction.speech`):
        the label is a guess about something the model was not trained on.
    members : int
        Models of the ensemble whose maps these are (1: a single model).
    functionals : bool
        Whether ``scores`` (and ``label``) fuse the CNN with the model's functionals head
        (:mod:`ser.fusion`), as ``ser classify`` does; the maps are the CNN's.
    cnn_weight : float
        The CNN's weight in that fusion (1.0 without a functionals head): how much of the
        score the maps explain; at 0 the functionals decide alone.
    adapted_to : int
        Recordings of the speaker the model was adapted to (``--same-speaker``; see
        :meth:`EmotionClassifier.set_speaker_reference`); 0: not adapted.
    occlusion, occlusion_up : np.ndarray [shape=(t', f') and (frames, n_mels)] or None
        With ``occlusion=True``: per Conv5 cell, how far the CNN's logit for the explained
        class falls when the cell's input region alone is replaced by the model's training
        mean (:func:`occlusion_map`), and the same repeated over the cell's frames and bands;
        ``None`` otherwise.
    """

    spectrogram: np.ndarray
    times: np.ndarray
    freqs: np.ndarray
    bottom_up: np.ndarray
    top_down: np.ndarray
    product: np.ndarray
    bottom_up_up: np.ndarray
    top_down_up: np.ndarray
    product_up: np.ndarray
    labels: list
    label: str
    probability: float
    explained_class: str
    scores: dict
    file: str | None = None
    start: float = 0.0
    end: float = 0.0
    head: str = "attention"
    bottom_up_mode: str = "linear"
    time_stride: int = 1
    freq_stride: int = 1
    window_starts: list = field(default_factory=list)
    window_counted: list = field(default_factory=list)
    speech: bool = True
    members: int = 1
    functionals: bool = False
    cnn_weight: float = 1.0
    adapted_to: int = 0
    occlusion: np.ndarray | None = None
    occlusion_up: np.ndarray | None = None

    @property
    def agreement(self) -> float | None:
        """Spearman rank correlation between ``product`` and ``occlusion`` over the cells:
        how well the attention's evidence ranks the regions the CNN's output depends on
        (``None`` without ``occlusion``, or where either map is constant)."""
        if self.occlusion is None:
            return None
        from scipy.stats import spearmanr

        a, b = self.product.ravel(), self.occlusion.ravel()
        if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return None
        return float(spearmanr(a, b).statistic)

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write the maps, axes and labels to ``path`` (compressed ``.npz``, atomically)."""
        arrays = {
            "spectrogram": self.spectrogram,
            "times": self.times,
            "freqs": self.freqs,
            "bottom_up": self.bottom_up,
            "top_down": self.top_down,
            "product": self.product,
            "bottom_up_up": self.bottom_up_up,
            "top_down_up": self.top_down_up,
            "product_up": self.product_up,
            "labels": np.asarray(self.labels),
            "scores": np.asarray([self.scores[label] for label in self.labels]),
            "label": np.asarray(self.label),
            "explained_class": np.asarray(self.explained_class),
            "head": np.asarray(self.head),
            "bottom_up_mode": np.asarray(self.bottom_up_mode),
            "strides": np.asarray([self.time_stride, self.freq_stride]),
            "window_starts": np.asarray(self.window_starts, dtype=np.float64),
            "window_counted": np.asarray(self.window_counted, dtype=bool),
            "speech": np.asarray(self.speech),
            "members": np.asarray(self.members),
            "functionals": np.asarray(self.functionals),
            "cnn_weight": np.asarray(self.cnn_weight),
            "adapted_to": np.asarray(self.adapted_to),
        }
        if self.occlusion is not None:
            arrays["occlusion"] = self.occlusion
            arrays["occlusion_up"] = self.occlusion_up
        _write_atomically(path, lambda f: np.savez_compressed(f, **arrays))


def mel_band_centers(frontend) -> np.ndarray:
    """Centre frequency (Hz) of each mel filter of a :class:`ser.features.FrontendConfig`."""
    import librosa

    edges = librosa.mel_frequencies(n_mels=frontend.n_mels + 2, fmin=frontend.fmin, fmax=frontend.fmax)
    return edges[1:-1].astype(np.float64)


def upsample(grid: np.ndarray, time_stride: int, freq_stride: int, frames: int, bands: int) -> np.ndarray:
    """Repeat each Conv5 cell over the frames and bands it covers (nearest neighbour).

    Parameters
    ----------
    grid : np.ndarray [shape=(t', f', ...)]
    time_stride, freq_stride : int
        Frames and bands per cell.
    frames, bands : int
        Size of the result (the last cells may cover padding, which is cut off).

    Returns
    -------
    np.ndarray [shape=(frames, bands, ...)]
    """
    up = np.repeat(np.repeat(grid, time_stride, axis=0), freq_stride, axis=1)
    if up.shape[0] < frames or up.shape[1] < bands:
        raise ValueError(
            f"grid {grid.shape} x strides ({time_stride}, {freq_stride}) does not cover {frames}x{bands}"
        )
    return up[:frames, :bands]


def occlusion_map(
    classifier: EmotionClassifier, features: np.ndarray, k: int, time_stride: int, freq_stride: int
) -> np.ndarray:
    """How far the CNN's logit for class ``k`` falls when each Conv5 cell's input region is hidden.

    The occlusion test of Zeiler & Fergus (ECCV 2014), cell by cell: for each cell of the
    Conv5 grid, the ``time_stride`` frames x ``freq_stride`` bands it covers are replaced by
    the model's training mean of each band (the value its input normalisation maps to zero),
    and the input goes through the whole network again. Unlike ``t_k * h``, which is what the
    pooling sums at each cell, this measures what the output depends on: the conv layers
    before the pooling let each cell see its neighbours' regions, so the two can differ.

    Parameters
    ----------
    classifier : EmotionClassifier
        For an ensemble, each member's fall (with its own training mean) is averaged, as its
        logits are.
    features : np.ndarray [shape=(frames, n_mels)]
        One input as the model takes it (:func:`ser.inference.model_features`).
    k : int
        Class index.
    time_stride, freq_stride : int
        Frames and bands per Conv5 cell.

    Returns
    -------
    np.ndarray [shape=(ceil(frames / time_stride), ceil(n_mels / freq_stride)), dtype=float32]
        Original logit minus the logit with the cell hidden: positive where the region
        supported class ``k``, negative where it spoke against it. One forward pass per cell
        (batched by :data:`OCCLUSION_BATCH`).
    """
    return occlusion_falls(
        classifier.members,
        features,
        k,
        time_stride,
        freq_stride,
        multiple=classifier.time_stride,
        name=classifier.path,
    )


def occlusion_falls(
    models: list,
    features: np.ndarray,
    k: int,
    time_stride: int,
    freq_stride: int,
    *,
    multiple: int,
    name: str,
) -> np.ndarray:
    """:func:`occlusion_map` of Keras models built by :func:`ser.model.build_model` (their
    falls averaged); ``multiple``: the models' time stride, ``name``: what errors call them."""

    frames, n_mels = features.shape
    rows, cols = -(-frames // time_stride), -(-n_mels // freq_stride)
    x, m = pad_batch([features], multiple=multiple)
    cells = [(i, j) for i in range(rows) for j in range(cols)]
    fall = np.zeros(len(cells), dtype=np.float64)
    for member in models:
        try:
            fill = np.asarray(member.get_layer("normalization").mean, dtype=np.float32)
        except ValueError:
            raise ModelError(
                f"{name}: no input normalisation layer to take the training mean from "
                "(saved by another version of ser?); expected a model written by `ser train`"
            ) from None
        forward = forward_function(member)
        base = float(np.asarray(forward(x, m))[0, k])
        for a in range(0, len(cells), OCCLUSION_BATCH):
            chunk = cells[a : a + OCCLUSION_BATCH]
            xs = np.repeat(x, len(chunk), axis=0)
            for n, (i, j) in enumerate(chunk):
                bands = slice(j * freq_stride, (j + 1) * freq_stride)
                xs[n, i * time_stride : min((i + 1) * time_stride, frames), bands] = fill[bands]
            out = np.asarray(forward(xs, np.repeat(m, len(chunk), axis=0)), dtype=np.float64)
            fall[a : a + len(chunk)] += base - out[:, k]
            interrupts.check()  # a Ctrl-C that came during the model call (ser.interrupts)
    if not np.all(np.isfinite(fall)):
        raise ModelError(f"{name}: the model produced NaN or infinite outputs; is the file corrupted?")
    return (fall / len(models)).reshape(rows, cols).astype(np.float32)


def compute_attention(
    classifier: EmotionClassifier,
    audio,
    sample_rate: int | None = None,
    *,
    class_name: str | None = None,
    start: float | None = None,
    end: float | None = None,
    occlusion: bool = False,
) -> AttentionMaps:
    """Attention maps of a file or waveform (or of a time range of it).

    Parameters
    ----------
    classifier : EmotionClassifier
    audio : str, PathLike or np.ndarray [shape=(n,) or (n, channels)]
    sample_rate : int or None
        Rate of an array in Hz (required for arrays).
    class_name : str or None
        Class to explain; default the predicted one.
    start, end : float or None
        Range in seconds (default: the whole input, at most :data:`MAX_ATTENTION_DURATION` s).
    occlusion : bool
        Also compute :func:`occlusion_map` for the explained class (one forward pass per
        Conv5 cell; a long range's windows each on their own, as their maps are).

    Returns
    -------
    AttentionMaps

    Raises
    ------
    ConfigError
        Unknown class, bad range, or a range longer than :data:`MAX_ATTENTION_DURATION`.
    AudioError
        Unreadable or unusable audio.
    """
    labels = classifier.labels
    if class_name is not None and class_name not in labels:
        raise ConfigError(f"unknown class {class_name!r}; this model knows {', '.join(labels)}")
    head = classifier.head
    if head not in ("attention", "average", "max"):
        raise ModelError(f"{classifier.path}: unknown head {head!r}; cannot draw its attention")
    y, name, t0, t1 = _read_input(classifier, audio, sample_rate, start, end)
    if is_silent(y):
        # as classify does: no picture of a guess about silence
        raise _silent(name, None if start is None and end is None else (t0, t1))
    hop = classifier.frontend.hop_length
    sr = classifier.sample_rate

    # Pieces: the whole range, or consecutive windows of a whole number of Conv5 cells.
    if y.size <= WHOLE_MAX_DURATION * sr:
        pieces = [(0, y)]
    else:
        cell = hop * classifier.time_stride
        step = max(1, int(round(DEFAULT_WINDOW * sr / cell))) * cell
        bounds = list(range(0, y.size, step))
        if len(bounds) > 1 and y.size - bounds[-1] < step // 2:
            bounds.pop()  # a short remainder joins the last window rather than stand alone
        bounds.append(y.size)
        pieces = [(a, y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    spectra, grids_td, grids_bu, probs, voiced, inputs = [], [], [], [], [], []
    strides = None
    for i in range(0, len(pieces), BATCH_WINDOWS):
        batch = pieces[i : i + BATCH_WINDOWS]
        feats, specs = [], []
        for j, (_, w) in enumerate(batch):
            if len(pieces) == 1:
                # A whole utterance is trimmed of leading/trailing silence, as in training and
                # in classify; the time axis runs from the first to the last kept frame.
                raw = _raw_logmel(classifier, w)
                a, b = trim_bounds(raw, classifier.frontend.trim_db)
                f, s = model_features(classifier, w), raw[a:b]
                t0 += a * hop / sr
                t1 = min(t1, t0 + (b - a) * hop / sr)
            else:
                f = model_features(classifier, w, trim=False)
                s = _raw_logmel(classifier, w) if classifier.standardizes_input else f
                if i + j < len(pieces) - 1:  # a window of n samples has n // hop frames, not 1 + n // hop
                    f, s = f[: w.size // hop], s[: w.size // hop]
            feats.append(f)
            specs.append(s)
        if occlusion:
            inputs.extend(feats)
        logits, top_down, bottom_up, st, sf_ = _head_maps(classifier, feats)
        strides = (st, sf_)
        for f, s, td, bu in zip(feats, specs, top_down, bottom_up, strict=True):
            cells = -(-f.shape[0] // st)
            spectra.append(s)
            grids_td.append(td[:cells])
            grids_bu.append(bu[:cells])
        if len(pieces) == 1:
            probs.append(classifier.fused(logits, [w for _, w in batch]))
        voiced.extend(voiced_fraction(w, sr) for _, w in batch)

    if len(pieces) == 1:
        probs = np.concatenate(probs)[0]
        speech = holds_speech(voiced)  # (one piece: the whole range)
    else:
        # The range's label and scores are what `ser classify` gives it: overlapping windows
        # of DEFAULT_WINDOW s every DEFAULT_HOP s, those without speech not voting. The maps
        # above come from consecutive windows, so that every frame is drawn once.
        prediction = classifier.classify(y, sr)
        probs = np.array([prediction.scores[label] for label in labels])
        speech = prediction.speech
    scores = {label: float(p) for label, p in zip(labels, probs, strict=True)}
    label = labels[int(np.argmax(probs))]
    explained = class_name or label
    k = labels.index(explained)
    spectrogram = np.concatenate(spectra).astype(np.float32)
    top_down = np.concatenate(grids_td).astype(np.float32)
    bottom_up = np.concatenate(grids_bu).astype(np.float32)
    rank = bottom_up.shape[-1]
    td_k = top_down[..., k * rank : (k + 1) * rank]
    members = len(classifier.members)
    product = (td_k * bottom_up).sum(axis=-1) / members
    frames, n_mels = spectrogram.shape
    st, sf_ = strides

    if head == "attention":
        mode = classifier.members[0].get_layer("head").bottom_up
    else:
        mode = "constant"
    hidden = None
    if occlusion:
        hidden = np.concatenate([occlusion_map(classifier, f, k, st, sf_) for f in inputs])
    return AttentionMaps(
        spectrogram=spectrogram,
        times=(t0 + np.arange(frames) * hop / sr).astype(np.float64),
        freqs=mel_band_centers(classifier.frontend),
        bottom_up=bottom_up,
        top_down=top_down,
        product=product.astype(np.float32),
        bottom_up_up=upsample(bottom_up.sum(axis=-1) / members, st, sf_, frames, n_mels),
        top_down_up=upsample(td_k.sum(axis=-1) / members, st, sf_, frames, n_mels),
        product_up=upsample(product, st, sf_, frames, n_mels).astype(np.float32),
        labels=list(labels),
        label=label,
        probability=scores[label],
        explained_class=explained,
        scores=scores,
        file=name,
        start=t0,
        end=t1,
        head=head,
        bottom_up_mode=mode,
        time_stride=st,
        freq_stride=sf_,
        window_starts=[t0 + a / sr for a, _ in pieces],
        window_counted=[bool(c) for c in counted_windows(voiced)],
        speech=bool(speech),
        members=members,
        functionals=classifier.functionals is not None,
        cnn_weight=classifier.cnn_weight,
        adapted_to=_adapted_to(classifier),
        occlusion=hidden,
        occlusion_up=None if hidden is None else upsample(hidden, st, sf_, frames, n_mels),
    )


def _adapted_to(classifier: EmotionClassifier) -> int:
    """Recordings of one speaker ``classifier`` is adapted to (0: none, or too few to adapt)."""
    adapted = (
        classifier.adapted_files
        or classifier.functionals_reference is not None
        or (classifier.normalization == "speaker" and classifier.speaker_reference is not None)
    )
    return len(classifier.reference_labels) if adapted else 0


def _raw_logmel(classifier: EmotionClassifier, waveform: np.ndarray) -> np.ndarray:

    return logmel(waveform, classifier.frontend)


def _head_maps(classifier: EmotionClassifier, features: list[np.ndarray]):
    """Run the trunk, then the head eagerly with its maps.

    Returns
    -------
    logits : np.ndarray [shape=(b, n_classes)]
        Mean over the members of an ensemble.
    top_down : np.ndarray [shape=(b, t', f', n_classes * members * rank)]
    bottom_up : np.ndarray [shape=(b, t', f', members * rank)]
    time_stride, freq_stride : int
        The model's Conv5 strides (:func:`ser.runtime.conv5_strides`).
    """

    x, m = pad_batch(features, multiple=classifier.time_stride)
    all_logits, all_td, all_bu = [], [], []
    for member, fmap in zip(classifier.members, classifier.feature_map_models(), strict=True):
        X, mask = fmap([x, m], training=False)
        head = member.get_layer("head")
        if classifier.head == "attention":
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
    # An ensemble averages its members' logits; their maps are stacked along the rank axis
    # (member j's rank r at j * rank + r), so each class keeps its channels together.
    logits = np.mean(all_logits, axis=0)
    top_down = np.concatenate(all_td, axis=-1)
    top_down = top_down.reshape(top_down.shape[:3] + (-1,))
    bottom_up = np.concatenate(all_bu, axis=-1)
    if not np.all(np.isfinite(logits)):
        raise ModelError(
            f"{classifier.path}: the model produced NaN or infinite outputs; is the file corrupted?"
        )
    return logits, top_down, bottom_up, classifier.time_stride, classifier.freq_stride


def _check_range(start, end, duration: float, name: str) -> tuple[float, float]:
    """Validate a ``start``/``end`` range (seconds) against the input's duration."""
    for key, value in (("start", start), ("end", end)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise ConfigError(f"{key} must be a number of seconds. Received: {key}={value!r}")
    t0 = 0.0 if start is None else float(start)
    t1 = duration if end is None else min(float(end), duration)
    if t0 < 0:
        raise ConfigError(f"start must be >= 0 s. Received: start={start}")
    if t0 >= duration:
        raise ConfigError(f"{name}: start {t0:g} s is past the end of the audio ({duration:.2f} s)")
    if end is not None and float(end) <= t0:
        raise ConfigError(f"end must be after start. Received: start={t0:g}, end={end:g}")
    if t1 - t0 < MIN_DURATION - 1e-9:  # 4.1 - 4.0 is 0.0999...: a range of 0.1 s as typed is enough
        if start is None and end is None:  # the whole input: as classify says it
            raise AudioError(
                f"{name}: too short ({duration * 1000:.0f} ms); expected at least {MIN_DURATION * 1000:.0f} ms"
            )
        raise ConfigError(
            f"{name}: range {t0:g}-{t1:g} s is shorter than {MIN_DURATION} s; expected a range of at "
            f"least {MIN_DURATION} s"
        )
    if t1 - t0 > MAX_ATTENTION_DURATION:
        hint = "" if start is not None or end is not None else f" (the audio is {duration:.0f} s long)"
        raise ConfigError(
            f"{name}: a figure shows at most {MAX_ATTENTION_DURATION:.0f} s{hint}; choose a range with "
            f"--start and --end (start/end), e.g. --start {t0:g} --end {t0 + 60:g}"
        )
    return t0, t1


def _read_input(classifier: EmotionClassifier, audio, sample_rate, start, end):
    """The waveform of the range to explain, its name, and the range in seconds."""

    sr = classifier.sample_rate
    if isinstance(audio, (str, os.PathLike)):
        if sample_rate is not None:
            raise ConfigError(
                f"sample_rate is for arrays; a file's rate is read from the file. Received: sample_rate={sample_rate}"
            )
        info = audio_info(audio)
        name = str(audio)
        t0, t1 = _check_range(start, end, info.duration, name)
        a = int(round(t0 * info.sample_rate))
        b = min(info.frames, int(round(t1 * info.sample_rate)))
        y = _read_frames(info.path, a, b)
        # the range was checked above; rounding its ends to samples may cost it one sample (the
        # extra half keeps floating-point error on the right side)
        shortest = MIN_DURATION - 1.5 / info.sample_rate
        return (
            prepare_waveform(y, info.sample_rate, sr, name=info.path, min_duration=shortest),
            name,
            t0,
            t0 + (b - a) / info.sample_rate,
        )
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ConfigError("sample_rate is required when audio is an array. Received: sample_rate=None")
        y = prepare_waveform(audio, sample_rate, sr)
        t0, t1 = _check_range(start, end, y.size / sr, "<array>")
        a, b = int(round(t0 * sr)), min(y.size, int(round(t1 * sr)))
        return y[a:b], None, t0, t0 + (b - a) / sr
    raise ConfigError(
        f"audio must be a file path or a numpy array of samples. Received: {type(audio).__name__}"
    )


def _read_frames(path: str, a: int, b: int) -> np.ndarray:
    """Samples ``a:b`` of a file, mixed to mono at the file's rate (seeks, reads only the range,
    a few channels' worth at a time: :func:`ser.audio.read_mono`)."""
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            f.seek(a)
            return read_mono(f, b - a)
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioError(f"{path}: cannot decode audio ({reason}); expected a complete audio file") from None


def _check_output(path) -> Path:
    """``path`` as a Path, checked to name a file that can be made: not a folder, not below a file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected the name of a file to write")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ConfigError(f"{path}: {above} is a file; expected a path inside a folder")
    return path


def _check_writable(path: Path) -> None:
    """Check a file can be created in ``path``'s folder, or in the nearest folder above it that
    exists (the rest is made when the file is written), by creating and removing one there."""

    folder = next((p for p in path.parents if p.exists()), Path("."))
    try:
        probe_writable(folder)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write here ({exc.strerror or exc}); expected a folder you can write to"
        ) from None


def check_outputs(out: str | os.PathLike, npz: str | os.PathLike | None = None) -> None:
    """Check ``ser attention``'s output names before any work: ``out`` a picture of a format
    :func:`plot_attention` writes (:func:`figure_format`), ``npz`` a name ending in ``.npz``,
    both files that can be made in folders that can be written.

    Raises
    ------
    ConfigError
    """
    figure_format(out)
    if npz is not None:
        # (so it cannot name the picture too, which it overwrote)
        if Path(npz).suffix.lower() != ".npz":
            raise ConfigError(f"{npz}: not a .npz name; expected a file name ending in .npz for --npz")
    for path in (out, npz):
        if path is not None:
            _check_writable(_check_output(path))


def _write_atomically(path: str | os.PathLike, write) -> None:
    """:func:`ser.io.write_atomically` to ``path``, checked first (:func:`_check_output`)."""

    write_atomically(_check_output(path), write)


def _freq_ticks(freqs: np.ndarray, min_gap: float = 1 / 12) -> tuple[list, list]:
    """Hz ticks and their positions on a mel-band axis (band ``i`` at ``i``), not crowded.

    Band centres are equally spaced in mel, so a frequency's position is its mel value in
    units of that spacing; ticks closer than ``min_gap`` of the axis are dropped, from the top.
    """
    import librosa

    mels = librosa.hz_to_mel(freqs)
    step = (mels[-1] - mels[0]) / max(len(freqs) - 1, 1)
    chosen, positions = [], []
    for f in sorted(FREQ_TICKS_HZ, reverse=True):
        pos = float((librosa.hz_to_mel(f) - mels[0]) / step)
        if -0.5 <= pos <= len(freqs) - 0.5 and all(abs(pos - p) >= min_gap * len(freqs) for p in positions):
            chosen.append(f)
            positions.append(pos)
    return chosen[::-1], positions[::-1]


#: Picture formats ``plot_attention`` writes, by file suffix (no suffix: PNG).
FIGURE_FORMATS = {"png": "png", "pdf": "pdf", "svg": "svg", "jpg": "jpg", "jpeg": "jpg"}


def figure_format(path: str | os.PathLike) -> str:
    """The picture format of ``path`` from its suffix (PNG without one).

    Raises
    ------
    ConfigError
        A suffix of another format, so that ``x.gif`` never silently holds a PNG.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in FIGURE_FORMATS:
        raise ConfigError(
            f"{path}: cannot write a .{suffix} picture; expected a file name ending in "
            f"{', '.join('.' + s for s in FIGURE_FORMATS)}"
        )
    return FIGURE_FORMATS[suffix]


def _symmetric_limit(a: np.ndarray, percentile: float = 100.0) -> float:
    """Colour limit of a map drawn from ``-limit`` to ``+limit`` (zero in the middle): the
    ``percentile`` of ``|a|`` (its maximum at 100), the maximum where that is 0, 1.0 for an
    all-zero or empty map."""
    magnitude = np.abs(np.asarray(a, dtype=np.float64)).ravel()
    if not magnitude.size:
        return 1.0
    limit = float(np.percentile(magnitude, percentile))
    if limit <= 0:
        limit = float(magnitude.max())
    return limit if limit > 0 else 1.0


def _extend(a: np.ndarray, limit: float) -> str:
    """The colour bar's ``extend`` for a map drawn within ``+-limit``: the ends ``a`` goes beyond."""
    below, above = bool(np.any(a < -limit)), bool(np.any(a > limit))
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((below, above), "both")


def figure_title(maps: AttentionMaps) -> str:
    """The default title of :func:`plot_attention`: the file, the predicted class and its
    probability (and the explained class if different), then notes: an ensemble, the speaker
    adaptation, the CNN's weight beside the functionals, the range and windows."""
    name = Path(maps.file).name if maps.file else "audio"
    title = f"{name}: predicted {maps.label} ({maps.probability:.2f})"
    if maps.explained_class != maps.label:
        title += f"; explaining {maps.explained_class} ({maps.scores[maps.explained_class]:.2f})"
    notes = []
    if not maps.speech:
        notes.append("no voiced speech found: the label is a guess")
    if maps.members > 1:
        notes.append(f"ensemble of {maps.members} models, maps averaged over them")
    if maps.adapted_to:  # scores and maps are those of the adapted model
        notes.append(f"adapted to the speaker ({maps.adapted_to} recordings)")
    if maps.functionals and maps.cnn_weight > 0:
        notes.append(f"CNN weight {maps.cnn_weight:.2f} beside the functionals; the maps are the CNN's")
    elif maps.functionals:
        notes.append("decided by the functionals alone (CNN weight 0); the maps show what the CNN heard")
    if len(maps.window_starts) > 1:
        left = sum(not c for c in maps.window_counted)
        notes.append(
            f"{maps.start:.1f}-{maps.end:.1f} s in {len(maps.window_starts)} windows (dashed lines)"
            + (f", {left} without speech greyed out (not voting)" if left else "")
        )
    elif maps.start > 0:
        notes.append(f"{maps.start:.1f}-{maps.end:.1f} s")
    lines = notes[:1]
    for note in notes[1:]:  # as many notes to a line as fit in about 100 characters
        if len(lines[-1]) + 2 + len(note) <= 100:
            lines[-1] += f"; {note}"
        else:
            lines.append(note)
    return "\n".join([title, *lines])


def _overlay(
    fig, ax, spec: np.ndarray, grid: np.ndarray, grid_up: np.ndarray, label: str, image_kw: dict
) -> None:
    """Draw a signed map over the spectrogram in grey: red for, blue against, opacity growing
    with strength up to +-the :data:`PRODUCT_COLOR_PERCENTILE` percentile of ``|grid|``."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax.imshow(spec.T, cmap="Greys", **image_kw)
    lim = _symmetric_limit(grid, PRODUCT_COLOR_PERCENTILE)
    norm = Normalize(-lim, lim, clip=True)
    cmap = colormaps["RdBu_r"]
    rgba = cmap(norm(grid_up.T))
    rgba[..., 3] = 0.85 * np.minimum(np.abs(grid_up.T) / lim, 1.0)
    ax.imshow(rgba, **image_kw)
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, label=label, extend=_extend(grid_up, lim)
    )


def plot_attention(maps: AttentionMaps, out_png: str | os.PathLike, title: str | None = None) -> None:
    """Draw the spectrogram and the attention maps, one above the other, to a picture file.

    Four panels share the time axis: the log-mel spectrogram (frequency ticks in Hz on the
    mel-spaced axis), the bottom-up map, the top-down map of the explained class, and their
    product over the spectrogram (red: evidence for the class, blue: against; opacity grows
    with strength up to +-the :data:`PRODUCT_COLOR_PERCENTILE` percentile of ``|t·h|``, beyond
    which cells get the end colours, shown by the colour bar's pointed ends). Maps computed
    with ``occlusion=True`` get a fifth panel, drawn the same way: the occlusion map, with its
    rank correlation with ``t·h`` (:attr:`AttentionMaps.agreement`) in its title. The file is
    written atomically, as PNG, PDF, SVG or JPEG by its suffix (:func:`figure_format`).

    Parameters
    ----------
    maps : AttentionMaps
    out_png : str or PathLike
    title : str or None
        Default: :func:`figure_title`.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    spec = maps.spectrogram
    frames, n_mels = spec.shape
    duration = maps.end - maps.start
    half = (maps.times[1] - maps.times[0]) / 2 if frames > 1 else 0.005
    extent = (maps.times[0] - half, maps.times[-1] + half, -0.5, n_mels - 0.5)
    width = float(np.clip(6.0 + 0.5 * duration, 9.0, 22.0))
    panels = 4 if maps.occlusion is None else 5
    fig = Figure(figsize=(width, 2.75 * panels), dpi=110, layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, sharey=True)
    image_kw = {"origin": "lower", "aspect": "auto", "extent": extent, "interpolation": "nearest"}

    ticks, positions = _freq_ticks(maps.freqs)

    def freq_axis(ax):
        ax.set_yticks(positions)
        ax.set_yticklabels([f"{f / 1000:g}k" if f >= 1000 else f"{f:g}" for f in ticks])
        ax.set_ylabel("frequency (Hz)")

    explained = maps.explained_class
    k = maps.labels.index(explained)

    # 1. spectrogram
    ax = axes[0]
    im = ax.imshow(spec.T, cmap="magma", **image_kw)
    fig.colorbar(im, ax=ax, pad=0.01, label="log mel power")
    ax.set_title("log-mel spectrogram", loc="left", fontsize=10)

    # 2. bottom-up
    ax = axes[1]
    bu = maps.bottom_up_up
    if maps.bottom_up_mode == "constant":
        im = ax.imshow(bu.T, cmap="Greys", vmin=0.0, vmax=2.0, **image_kw)
        text = f"bottom-up h = 1 everywhere ({maps.head}-pooling head: no attention)"
        ax.text(
            0.5, 0.5, "h = 1", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="white"
        )
    elif maps.bottom_up_mode == "softmax":
        im = ax.imshow(bu.T, cmap="viridis", vmin=0.0, **image_kw)
        text = "bottom-up attention h (class-agnostic; softmax over positions, per window)"
    else:
        lim = _symmetric_limit(bu)
        im = ax.imshow(bu.T, cmap="PuOr_r", vmin=-lim, vmax=lim, **image_kw)
        text = "bottom-up attention h (class-agnostic; its sign matters only in t·h)"
    fig.colorbar(im, ax=ax, pad=0.01, label="h")
    ax.set_title(text, loc="left", fontsize=10)

    # 3. top-down of the explained class
    ax = axes[2]
    lim = _symmetric_limit(maps.top_down_up)
    im = ax.imshow(maps.top_down_up.T, cmap="RdBu_r", vmin=-lim, vmax=lim, **image_kw)
    fig.colorbar(im, ax=ax, pad=0.01, label=f"t[{explained}]")
    what = "class activation map" if maps.head != "attention" else "top-down attention"
    ax.set_title(f"{what} t for '{explained}' (class {k})", loc="left", fontsize=10)

    # 4. product over the spectrogram; a robust limit, so one strong cell does not wash out the rest
    ax = axes[3]
    _overlay(fig, ax, spec, maps.product, maps.product_up, "t·h", image_kw)
    if maps.head == "max":
        text = f"class activation map for '{explained}' (red for, blue against; max head: logit uses peaks)"
    else:
        how = "sum" if maps.bottom_up_mode == "softmax" else "mean"
        text = f"t·h: evidence for '{explained}' (red for, blue against; the logit is its {how})"
    ax.set_title(text, loc="left", fontsize=10)

    # 5. occlusion, where computed: what the CNN's output depends on, on the same grid
    if maps.occlusion is not None:
        ax = axes[4]
        _overlay(fig, ax, spec, maps.occlusion, maps.occlusion_up, "logit fall", image_kw)
        agreement = maps.agreement
        agrees = "" if agreement is None else f"; rank correlation with t·h {agreement:.2f}"
        ax.set_title(
            f"occlusion: fall of the CNN's '{explained}' logit with the region set to the training mean{agrees}",
            loc="left",
            fontsize=10,
        )
    axes[-1].set_xlabel("time (s)")

    for ax in axes:
        freq_axis(ax)
        for t in maps.window_starts[1:]:
            ax.axvline(t, color="white" if ax is axes[0] else "0.4", lw=0.6, ls="--", alpha=0.7)
    unvoiced = [i for i, c in enumerate(maps.window_counted) if not c]
    bounds = [*maps.window_starts, maps.end]
    for i in unvoiced:  # pauses or noise, which classify leaves out of the label
        for ax in axes[1:]:
            ax.axvspan(bounds[i], bounds[i + 1], color="0.5", alpha=0.35, lw=0)
    axes[0].set_xlim(extent[0], extent[1])

    fig.suptitle(figure_title(maps) if title is None else title, fontsize=12)
    fmt = figure_format(out_png)
    _write_atomically(out_png, lambda f: fig.savefig(f, format=fmt))


def attention_command(
    model_path: str,
    audio_path: str,
    *,
    out: str,
    class_name: str | None = None,
    npz: str | None = None,
    start: float | None = None,
    end: float | None = None,
    same_speaker=None,
    occlusion: bool = False,
) -> int:
    """``ser attention``: draw the maps of one file to a PNG (and save them to an ``.npz``).

    Parameters
    ----------
    same_speaker : list of str or None
        Other recordings of the file's speaker: the model adapts to them and the file itself
        (as ``ser classify --same-speaker`` does) before the maps are computed.
    occlusion : bool
        Add the occlusion map (:func:`occlusion_map`) as a fifth panel and to the ``.npz``.

    Returns
    -------
    int
        0; 1 if the file, or one of ``same_speaker``, cannot be used (unreadable, too short,
        silent, ...): each such file is named on a line of stderr, as ``ser classify`` names
        its files, and the picture is still drawn from the others.

    Raises
    ------
    ConfigError
        A bad ``out`` or ``npz`` (checked first), an unknown class or a bad range.
    ModelError
        The model cannot be loaded.
    """
    import sys

    check_outputs(out, npz)
    classifier = EmotionClassifier.load(model_path)
    failed = 0
    if same_speaker:
        skipped = adapt_to_speaker(classifier, [audio_path, *same_speaker])
        for path, message in skipped.items():
            if path != str(audio_path):  # the file itself is reported below
                failed += 1
                print(f"{path}: error: {message}", file=sys.stderr, flush=True)
    try:
        maps = compute_attention(
            classifier, audio_path, class_name=class_name, start=start, end=end, occlusion=occlusion
        )
    except AudioError as exc:
        print(f"{audio_path}: error: {_error_text(str(audio_path), exc)}", file=sys.stderr, flush=True)
        return 1
    interrupts.check()  # a Ctrl-C during the maps stops before anything is written
    for note in audio_notes(classifier, audio_path):
        print(note, file=sys.stderr, flush=True)
    if not maps.speech:
        print(f"note: {audio_path}: {NO_SPEECH_NOTE}", file=sys.stderr, flush=True)
    if (start is not None or end is not None) and len(maps.window_starts) == 1:
        duration = audio_info(audio_path).duration
        asked = (
            0.0 if start is None else float(start),
            duration if end is None else min(float(end), duration),
        )
        if maps.start > asked[0] + 0.05 or maps.end < asked[1] - 0.05:
            print(
                f"note: leading and trailing silence trimmed, as the model sees it: showing "
                f"{maps.start:.2f}-{maps.end:.2f} s of the {asked[0]:.2f}-{asked[1]:.2f} s asked for",
                file=sys.stderr,
                flush=True,
            )
    plot_attention(maps, out)
    written = f"wrote {out}"
    if npz is not None:
        maps.save_npz(npz)
        written += f" and {npz}"
    explained = "" if maps.explained_class == maps.label else f", explaining {maps.explained_class}"
    print(f"{written} ({audio_path}: {maps.label} {maps.probability:.2f}{explained})")
    return 1 if failed else 0
