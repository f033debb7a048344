"""An ONNX export behind the backend interface of :mod:`ser.backend`, run with ONNX Runtime.

No TensorFlow, no Keras: the graph (:mod:`ser.exported`) gives the logits and each member's
maps; the metadata gives the rest. Speaker adaptation of batch-norm statistics needs the
Keras model (:attr:`OnnxBackend.can_adapt` is False).
"""

from __future__ import annotations

import numpy as np

from ser import interrupts
from ser.errors import ModelError
from ser.exported import METADATA_KEY, check_export_file, output_names, read_metadata


class OnnxBackend:
    """A ``.onnx`` file written by ``ser export``, loaded with ONNX Runtime.

    See :class:`ser.backend.Backend` for the interface.
    """

    can_adapt = False

    def __init__(self, session, meta: dict, path: str):
        self.session = session
        self._set_metadata(meta, path)
        inputs = [i.name for i in session.get_inputs()]
        outputs = {o.name: o for o in session.get_outputs()}
        self._check_names(inputs, outputs)
        n_out = outputs["logits"].shape[-1]
        self.n_outputs = n_out if isinstance(n_out, int) else len(self.labels)

    def _set_metadata(self, meta: dict, path) -> None:
        """The attributes of :class:`ser.backend.Backend` that the metadata gives."""
        self.path = str(path)
        self.labels = [str(label) for label in meta["labels"]]
        self.frontend = dict(meta["frontend"])
        self.info = dict(meta["info"])
        self.meta = meta
        self.n_members = int(meta["members"])
        self.n_mels = int(meta["n_mels"])
        self.head = str(meta["head"])
        self.bottom_up_mode = str(meta["bottom_up_mode"])
        self.time_stride, self.freq_stride = int(meta["time_stride"]), int(meta["freq_stride"])

    def _check_names(self, inputs: list, outputs) -> None:
        """Raise :class:`ModelError` unless the graph has the inputs and outputs ``ser export`` writes."""
        missing = [n for n in output_names(self.n_members) if n not in outputs]
        if list(inputs) != ["features", "mask"] or missing:
            raise ModelError(
                f"{self.path}: graph with inputs {list(inputs)} and without outputs {missing}; expected "
                "inputs ['features', 'mask'] and the outputs `ser export` writes"
            )

    @classmethod
    def load(cls, path) -> OnnxBackend:
        """Open a ``.onnx`` export.

        Raises
        ------
        ModelError
            Missing file, onnxruntime not installed, not an ONNX model (truncated, damaged,
            another kind of file), no ``ser`` metadata, or another format version.
        """
        file = check_export_file(path)
        try:
            import onnxruntime
        except ImportError:
            raise ModelError(
                f"{file}: running an ONNX export needs onnxruntime; install it with: pip install onnxruntime"
            ) from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # no busy-waiting between calls: the features and functionals are computed in numpy
        # between model calls, on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(file, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime reports every bad file its own way
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ModelError(
                f"{file}: cannot load the ONNX model ({reason}); the file is truncated, damaged or "
                "not an ONNX model"
            ) from None
        meta = read_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), file)
        return cls(session, meta, file)

    def _run(self, names: list[str], x: np.ndarray, m: np.ndarray) -> list[np.ndarray]:
        out = self.session.run(
            names, {"features": np.asarray(x, np.float32), "mask": np.asarray(m, np.float32)}
        )
        interrupts.check()
        return out

    def logits(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The model's logits ``(b, n_classes)`` of a padded batch, float32."""
        return np.asarray(self._run(["logits"], x, m)[0], dtype=np.float32)

    def member_maps(self, x: np.ndarray, m: np.ndarray) -> list:
        """Per member, ``(logits, top_down, bottom_up)`` of a padded batch."""
        out = self._run(output_names(self.n_members)[1:], x, m)
        return [tuple(out[3 * j : 3 * j + 3]) for j in range(self.n_members)]

    def member_logits(self, j: int, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Member ``j``'s logits ``(b, n_classes)`` of a padded batch."""
        return self._run([f"logits_{j + 1}"], x, m)[0]

    def occlusion_fill(self, j: int) -> np.ndarray:
        """Member ``j``'s training mean of each mel band (what its normalisation maps to 0)."""
        return np.asarray(self.meta["occlusion_fill"][j], dtype=np.float32)

    def adapt(self, features: list, blocks, multiple: int) -> None:
        """Not possible: raises :class:`ModelError` (re-estimating batch-norm statistics needs the Keras model)."""
        raise ModelError(
            f"{self.path}: --same-speaker re-estimates the batch-norm statistics of Conv blocks "
            f"{', '.join(map(str, blocks))}, which needs the Keras model (model.keras) this file was "
            "exported from; an export cannot adapt them"
        )

    def restore(self, blocks) -> None:
        """Nothing to restore (an export is never adapted)."""
