"""The functionals head and its fusion with the CNN.

- :class:`FunctionalsHead`: multinomial logistic regression on the standardised utterance
  functionals (:mod:`ser.functionals`), in two variants: one on features standardised with
  the training corpus's statistics (used for a single recording; it leaves out the speech
  level, which says more about the microphone than about the emotion), and one on features
  standardised *per speaker*, where the level says how loud a recording is against the
  speaker's others (used when several recordings of the speaker are known: the recipe's
  speaker-adapted scores and ``ser classify --same-speaker``; like the batch-norm
  adaptation of :mod:`ser.adaptation`, it is label-free, and erases what is constant within
  a speaker).
- The model's score is the weighted geometric mean of the two experts' probabilities,
  ``softmax(w log p_cnn + (1 - w) log p_functionals)`` (:func:`fuse`), with one CNN weight
  ``w`` for each variant, chosen by the training run on its validation speakers
  (:func:`choose_fusion_weight`). The attention maps explain the CNN's part of it.

The regressions are fitted on the training recordings and on copies of them at other speeds
(:func:`ser.augment.speed_perturbed`, ``model.functionals_speeds``), so they see each emotion
at more voices. ``model.functionals = false`` in a recipe turns the head off.
"""

from __future__ import annotations

import math

import numpy as np

from ser.constants import MIN_ADAPTATION_FILES
from ser.errors import ConfigError, ModelError
from ser.functionals import FUNCTIONALS_VERSION, GLOBAL_COLUMNS, N_FUNCTIONALS, utterance_functionals
from ser.normalization import speaker_standardize, standardization
from ser.runtime import log_softmax

#: Inverse L2 strength of both logistic regressions (scikit-learn's ``C``), chosen on
#: validation speakers, never on test folds.
DEFAULT_C = 0.03

#: Weight of the CNN in the geometric-mean fusion (the functionals get ``1 - weight``) where a
#: run has no validation speakers to choose it on; ties of :func:`choose_fusion_weight` go to
#: the weight nearest it.
FUSION_WEIGHT = 0.5

#: The CNN weights tried when a run chooses them on its validation speakers
#: (:func:`choose_fusion_weight`).
FUSION_GRID = tuple(round(0.05 * i, 2) for i in range(21))

#: Standardised functionals are clipped to this many standard deviations before the
#: regression, so a recording far outside the training data (a near-silent window, another
#: recording level) cannot make the linear head arbitrarily confident. Training rows stay
#: within it (per speaker, ``|z| <= sqrt(n - 1)`` for n files).
Z_LIMIT = 10.0

_SPEAKER_KEYS = ("speaker_mean", "speaker_std", "speaker_coef", "speaker_intercept")


def _fit_logistic(z: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Balanced multinomial logistic regression; classes absent from ``y`` get no probability."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((n_classes, z.shape[1]))
    intercept = np.full(n_classes, -30.0)
    present = np.unique(y)
    if present.size < 2:
        intercept[present] = 0.0
        return coef, intercept
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(z, y)
    if present.size == 2:  # scikit-learn keeps one row for two classes
        coef[present[1]], intercept[present[1]] = model.coef_[0], model.intercept_[0]
        intercept[present[0]] = 0.0
    else:
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    return coef, intercept


class FunctionalsHead:
    """Logistic regression on utterance functionals, global and per-speaker (see the module doc).

    Build it with :meth:`fit`; :meth:`to_dict` / :meth:`from_dict` store it in a model's
    metadata (``info["functionals"]``).
    """

    def __init__(
        self,
        mean,
        std,
        coef,
        intercept,
        speaker_mean=None,
        speaker_std=None,
        speaker_coef=None,
        speaker_intercept=None,
        weight: float = FUSION_WEIGHT,
        speaker_weight: float | None = None,
    ):
        #: The CNN's weight in :meth:`fuse` for a single recording, and with a speaker
        #: reference (the per-speaker regression).
        self.weight = float(weight)
        self.speaker_weight = float(weight if speaker_weight is None else speaker_weight)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.speaker = None
        if speaker_coef is not None:
            self.speaker = (
                np.asarray(speaker_mean, dtype=np.float64),
                np.asarray(speaker_std, dtype=np.float64),
                np.asarray(speaker_coef, dtype=np.float64),
                np.asarray(speaker_intercept, dtype=np.float64),
            )

    @property
    def n_classes(self) -> int:
        return int(self.coef.shape[0])

    def functionals(self, y: np.ndarray, sample_rate: int) -> np.ndarray:
        """:func:`ser.functionals.utterance_functionals` of a waveform ``(N_FUNCTIONALS,)``."""
        return utterance_functionals(y, sample_rate)

    @classmethod
    def fit(
        cls, x, y, speakers, n_classes: int, *, c: float = DEFAULT_C, min_files: int | None = None
    ) -> FunctionalsHead:
        """Fit both regressions on training recordings.

        Parameters
        ----------
        x : np.ndarray [shape=(n, N_FUNCTIONALS) or (n, 1 + m, N_FUNCTIONALS)]
            The recordings' functionals; in the 3-d form, ``x[:, 0]`` are the recordings'
            and ``x[:, j]`` those of a perturbed copy of each (``model.functionals_speeds``):
            every copy is a training row with its recording's label, and for the
            per-speaker regression copy ``j`` of a speaker is a speaker of its own.
        y : np.ndarray [shape=(n,)] of int
        speakers : sequence of str
            One per recording. The per-speaker regression uses the speakers with at least
            ``min_files`` recordings (default :data:`ser.constants.MIN_ADAPTATION_FILES`);
            with none, the head has no per-speaker variant.
        n_classes : int
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        if x.ndim == 3 and x.shape[0] == y.shape[0]:
            copies = x.shape[1]
            speakers = np.asarray(speakers).astype(str)
            speakers = np.concatenate(
                [speakers] + [np.char.add(speakers, f"\x1fcopy{j}") for j in range(1, copies)]
            )
            x = np.concatenate([x[:, j] for j in range(copies)])
            y = np.tile(y, copies)
        if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ConfigError(
                f"functionals must be (n, d) with one label per row. Received: {x.shape} and {y.shape}"
            )
        if x.shape[1] != N_FUNCTIONALS:
            raise ConfigError(f"expected {N_FUNCTIONALS} functionals per row. Received: {x.shape[1]}")
        g = x[:, GLOBAL_COLUMNS]
        mean, std = standardization(g)
        coef, intercept = _fit_logistic((g - mean) / std, y, n_classes, c)
        speakers = np.asarray(speakers).astype(str)
        names, counts = np.unique(speakers, return_counts=True)
        keep = np.isin(speakers, names[counts >= (MIN_ADAPTATION_FILES if min_files is None else min_files)])
        speaker_parts = {}
        if keep.any():
            z = speaker_standardize(x[keep], speakers[keep])
            s_mean, s_std = standardization(z)
            s_coef, s_intercept = _fit_logistic((z - s_mean) / s_std, y[keep], n_classes, c)
            speaker_parts = {
                "speaker_mean": s_mean,
                "speaker_std": s_std,
                "speaker_coef": s_coef,
                "speaker_intercept": s_intercept,
            }
        return cls(mean, std, coef, intercept, **speaker_parts)

    def log_probabilities(self, x, reference: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Log class probabilities ``(n, n_classes)`` of functionals ``x`` ``(n, N_FUNCTIONALS)``.

        ``reference``: ``(mean, std)`` of the speaker's functionals (:func:`standardization`
        over several of their recordings); then the per-speaker regression is used, if the
        head has one.
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != N_FUNCTIONALS:
            raise ModelError(
                f"the model's functionals head expects {N_FUNCTIONALS} functionals per recording; "
                f"received {x.shape[1]} (features of another version of ser?)"
            )
        if reference is not None and self.speaker is not None:
            s_mean, s_std, coef, intercept = self.speaker
            z = ((x - reference[0]) / reference[1] - s_mean) / s_std
        else:
            z = (x[:, GLOBAL_COLUMNS] - self.mean) / self.std
            coef, intercept = self.coef, self.intercept
        return log_softmax(np.clip(z, -Z_LIMIT, Z_LIMIT) @ coef.T + intercept)

    def fuse(self, cnn_logits, x, reference: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The model's fused logits: the CNN's with this head's on functionals ``x`` (:func:`fuse`).

        With a ``reference`` (see :meth:`log_probabilities`) and a per-speaker regression, the
        per-speaker regression and :attr:`speaker_weight`; otherwise :attr:`weight`.
        """
        return fuse(cnn_logits, self.log_probabilities(x, reference), self.weight_for(reference))

    def weight_for(self, reference) -> float:
        """The CNN's weight in :meth:`fuse` with this ``reference`` (or None)."""
        return self.speaker_weight if reference is not None and self.speaker is not None else self.weight

    def to_dict(self) -> dict:
        """JSON-serialisable form (lists of floats)."""
        d = {
            "version": FUNCTIONALS_VERSION,
            "weight": self.weight,
            "speaker_weight": self.speaker_weight,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }
        if self.speaker is not None:
            for key, value in zip(_SPEAKER_KEYS, self.speaker, strict=True):
                d[key] = value.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FunctionalsHead:
        """Inverse of :meth:`to_dict`; raises :class:`ModelError` on a malformed or newer head."""
        try:
            version = d.get("version")
            if isinstance(version, bool) or version != FUNCTIONALS_VERSION:
                raise ModelError(
                    f"functionals head of version {version!r}; this ser reads version "
                    f"{FUNCTIONALS_VERSION} (a model from another version of ser?)"
                )
            head = cls(
                d["mean"],
                d["std"],
                d["coef"],
                d["intercept"],
                **{k: d[k] for k in _SPEAKER_KEYS if k in d},
                weight=d["weight"],
                speaker_weight=d["speaker_weight"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed functionals head in the model ({exc})") from None
        if not all(0.0 <= w <= 1.0 for w in (head.weight, head.speaker_weight)):
            raise ModelError(
                f"malformed functionals head in the model (fusion weights {head.weight}, "
                f"{head.speaker_weight}; expected numbers in [0, 1])"
            )
        k, dims = head.coef.shape if head.coef.ndim == 2 else (0, 0)
        arrays = [(head.mean, (dims,)), (head.std, (dims,)), (head.intercept, (k,))]
        full = N_FUNCTIONALS
        if head.speaker is not None:
            arrays += list(zip(head.speaker, [(full,), (full,), (k, full), (k,)], strict=True))
        if (
            dims != GLOBAL_COLUMNS.size
            or any(a.shape != shape for a, shape in arrays)
            or not all(np.all(np.isfinite(a)) for a, _ in [*arrays, (head.coef, None)])
            or np.any(head.std <= 0)
        ):
            raise ModelError(f"malformed functionals head in the model (shape {head.coef.shape})")
        return head


def fuse(
    cnn_logits: np.ndarray, functional_log_probs: np.ndarray, weight: float = FUSION_WEIGHT
) -> np.ndarray:
    """Fused logits: ``weight * log_softmax(cnn) + (1 - weight) * log p_functionals``.

    Their softmax is the normalised weighted geometric mean of the two experts' probabilities.
    """
    return weight * log_softmax(cnn_logits) + (1.0 - weight) * np.asarray(
        functional_log_probs, dtype=np.float64
    )


def speaker_log_probabilities(
    head: FunctionalsHead, x, speakers, *, min_files: int | None = None
) -> np.ndarray:
    """Log-probabilities with each speaker's own functionals as the reference (label-free).

    Speakers with fewer than ``min_files`` rows (default
    :data:`ser.constants.MIN_ADAPTATION_FILES`) get the global regression.
    """
    min_files = MIN_ADAPTATION_FILES if min_files is None else min_files
    x = np.asarray(x, dtype=np.float64)
    speakers = np.asarray(speakers).astype(str)
    out = np.zeros((x.shape[0], head.n_classes))
    for s in np.unique(speakers):
        idx = speakers == s
        reference = standardization(x[idx]) if idx.sum() >= min_files else None
        out[idx] = head.log_probabilities(x[idx], reference)
    return out


def choose_fusion_weight(cnn_logits, functional_log_probs, y) -> float:
    """The CNN weight of :data:`FUSION_GRID` whose fusion best predicts ``y``.

    Meant for validation speakers only: the CNN's logits and the log-probabilities of a head
    fitted without them. "Best" is the lowest class-balanced cross-entropy of the fused
    probabilities (the mean over the classes of ``-log p(true class)`` of their files): a
    proper score that uses every file's probabilities, so it is steadier on a small validation
    set than the count of right answers. Ties go to the weight nearest
    :data:`FUSION_WEIGHT` (equal weights); with fewer than two classes, equal weights.
    """
    y = np.asarray(y)
    present = np.unique(y)
    if present.size < 2:
        return FUSION_WEIGHT
    best, best_loss = FUSION_WEIGHT, math.inf
    for w in sorted(FUSION_GRID, key=lambda w: (abs(w - FUSION_WEIGHT), w)):
        log_p = log_softmax(fuse(cnn_logits, functional_log_probs, w))
        loss = float(np.mean([-log_p[y == c, c].mean() for c in present]))
        if loss < best_loss - 1e-12:
            best, best_loss = w, loss
    return best
