"""A ``model.keras`` behind the backend interface of :mod:`ser.backend`.

Everything :class:`ser.classifier.EmotionClassifier` and the attention maps need of a Keras
model: its metadata, its logits (eager for the first calls, then a traced graph), each
member's logits and maps, and the batch-norm statistics that speaker adaptation
re-estimates. Keras and TensorFlow are imported when a model is loaded, never before.
"""

from __future__ import annotations

import numpy as np

from ser import interrupts
from ser.adaptation import adapt_batchnorm, batchnorm_state, set_batchnorm_state
from ser.errors import ModelError
from ser.model import ensemble_members, feature_map_model, head_maps
from ser.runtime import conv5_strides, forward_function
from ser.saved_model import load_keras_model, metadata_layer

#: The model is called eagerly this many times, then through a traced graph (``tf.function``),
#: so that one-off calls (the ``ser classify`` command) skip the tracing cost and repeated
#: calls (many files, long files, a server) run several times faster.
EAGER_CALLS = 2


def head_kind(member, path: str) -> str:
    """``"attention"``, ``"average"`` or ``"max"``: the pooling head of a model of
    :func:`ser.model.build_model`.

    Raises
    ------
    ModelError
        No layers ``head`` and ``pooling``: not a model written by ``ser train``.
    """
    from ser.layers import AttentionalPooling

    try:
        if isinstance(member.get_layer("head"), AttentionalPooling):
            return "attention"
        return str(member.get_layer("pooling").mode)
    except ValueError:
        raise ModelError(
            f"{path}: no pooling head found (layers 'head' and 'pooling'); expected a model written by `ser train`"
        ) from None


class KerasBackend:
    """A loaded Keras model (single CNN or ensemble), run with TensorFlow.

    See :class:`ser.backend.Backend` for the interface. Besides it:

    Attributes
    ----------
    model : keras.Model
        Inputs ``[features (b, t, n_mels), mask (b, t)]``, output logits ``(b, n_classes)``.
    members : list of keras.Model
        The CNNs whose logits ``model`` averages; ``[model]`` for a single CNN.
    """

    can_adapt = True

    def __init__(self, model, path: str = "<model>"):
        self.model = model
        self.path = str(path)
        self.members = ensemble_members(model)
        meta = metadata_layer(model, self.path)
        self.labels = [str(label) for label in meta.labels]
        self.frontend = dict(meta.frontend or {})
        self.info = dict(meta.info)
        self.n_members = len(self.members)
        self.n_mels = model.inputs[0].shape[-1] if len(model.inputs) == 2 else None
        self.n_outputs = int(model.outputs[0].shape[-1])
        self.head = head_kind(self.members[0], self.path)
        head = self.members[0].get_layer("head")
        self.bottom_up_mode = str(head.bottom_up) if self.head == "attention" else "constant"
        self.time_stride, self.freq_stride = conv5_strides(self.members[0])
        self._calls = 0
        self._graph = None
        self._feature_maps = None
        self._training_batchnorm = None

    @classmethod
    def load(cls, path) -> KerasBackend:
        """Load a ``model.keras`` file or the one in a run folder (:func:`ser.saved_model.load_keras_model`)."""
        model, file = load_keras_model(path)
        return cls(model, file)

    def logits(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The model's logits ``(b, n_classes)`` of a padded batch, float32."""
        self._calls += 1
        if self._calls <= EAGER_CALLS:
            out = self.model([x, m], training=False)
        else:
            if self._graph is None:
                self._graph = forward_function(self.model)
            out = self._graph(x, m)
        out = np.asarray(out, dtype=np.float32)
        interrupts.check()  # a Ctrl-C that came during the model call (ser.interrupts)
        return out

    def feature_map_models(self) -> list:
        """Per member, its Conv5 map and that map's mask (:func:`ser.model.feature_map_model`; cached)."""
        if self._feature_maps is None:
            try:
                self._feature_maps = [feature_map_model(m) for m in self.members]
            except ValueError:
                raise ModelError(
                    f"{self.path}: cannot find the Conv5 feature map in this model; expected a model "
                    "written by `ser train`"
                ) from None
        return self._feature_maps

    def member_maps(self, x: np.ndarray, m: np.ndarray) -> list:
        """Per member, ``(logits, top_down, bottom_up)`` of a padded batch
        (:func:`ser.model.head_maps`), as numpy arrays."""
        out = []
        for member, fmap in zip(self.members, self.feature_map_models(), strict=True):
            logits, top_down, bottom_up = head_maps(member, fmap, x, m)
            out.append((np.asarray(logits), np.asarray(top_down), np.asarray(bottom_up)))
            interrupts.check()
        return out

    def member_logits(self, j: int, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Member ``j``'s logits ``(b, n_classes)`` of a padded batch."""
        out = np.asarray(forward_function(self.members[j])(x, m))
        interrupts.check()
        return out

    def occlusion_fill(self, j: int) -> np.ndarray:
        """Member ``j``'s training mean of each mel band (what its normalisation maps to 0)."""
        try:
            return np.asarray(self.members[j].get_layer("normalization").mean, dtype=np.float32)
        except ValueError:
            raise ModelError(
                f"{self.path}: no input normalisation layer to take the training mean from "
                "(saved by another version of ser?); expected a model written by `ser train`"
            ) from None

    def adapt(self, features: list, blocks, multiple: int) -> None:
        """Re-estimate the batch-norm statistics of ``blocks`` from ``features``
        (:func:`ser.adaptation.adapt_batchnorm`); :meth:`restore` puts the training ones back."""
        if self._training_batchnorm is None:
            self._training_batchnorm = batchnorm_state(self.model, blocks)
        adapt_batchnorm(self.model, features, blocks, multiple=multiple)

    def restore(self, blocks) -> None:
        """Put back the training batch-norm statistics of ``blocks`` (after :meth:`adapt`)."""
        if self._training_batchnorm is not None:
            set_batchnorm_state(self.model, blocks, self._training_batchnorm)
            self._training_batchnorm = None
