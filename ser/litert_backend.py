"""A LiteRT export (``.tflite``) behind the backend interface of :mod:`ser.backend`, run with
the LiteRT interpreter (``ai-edge-litert``).

No TensorFlow, no Keras. The flatbuffer holds the graph (one signature, inputs ``features``
and ``mask``, the outputs of :func:`ser.exported.output_names`) and the same JSON metadata
as an ONNX export, as a TFLite ``metadata`` entry named :data:`ser.exported.METADATA_KEY`.
The interpreter does not expose metadata, so :func:`read_metadata_text` parses the file with
the flatbuffer schema that ``ai-edge-litert`` ships; :func:`with_metadata` writes it (at export).
Everything else is :class:`ser.onnx_backend.OnnxBackend`'s.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ser import interrupts
from ser.errors import ModelError
from ser.exported import METADATA_KEY, check_export_file, read_metadata
from ser.onnx_backend import OnnxBackend

_INSTALL = "pip install ai-edge-litert"


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelError(f"a LiteRT export needs ai-edge-litert; install it with: {_INSTALL}") from None
    return schema_py_generated


def read_metadata_text(data: bytes) -> str | None:
    """The text of the :data:`METADATA_KEY` metadata entry of a TFLite flatbuffer, or None."""
    schema = _schema()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_KEY.encode():
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return bytes(raw).decode("utf-8") if isinstance(raw, np.ndarray) else ""
    return None


def with_metadata(data: bytes, text: str, outputs: list[str]) -> bytes:
    """A TFLite flatbuffer with ``text`` as its :data:`METADATA_KEY` metadata entry and its one
    signature's outputs named ``outputs`` (the converter numbers them ``output_0``, ... in
    that order)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    (signature,) = model.signatureDefs
    by_number = {f"output_{i}": name for i, name in enumerate(outputs)}
    for tensor_map in signature.outputs:
        tensor_map.name = by_number[
            tensor_map.name.decode() if isinstance(tensor_map.name, bytes) else tensor_map.name
        ]
    builder = flatbuffers.Builder(len(data) + len(text) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


#: What the LiteRT runtime writes to the standard error (file descriptor 2, from C++) when its
#: first run applies the XNNPACK delegate: a notice, not a problem; it has no switch.
XNNPACK_NOTICE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_xnnpack_notice():
    """Run the body with file descriptor 2 captured, then write back all it received except
    :data:`XNNPACK_NOTICE` (warnings and errors still reach the standard error, after the
    body). Where descriptor 2 cannot be duplicated, the body runs as is."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line for line in capture.read().splitlines(keepends=True) if line.strip() != XNNPACK_NOTICE
            ]
            if kept:
                os.write(2, b"".join(kept))


class LiteRTBackend(OnnxBackend):
    """A ``.tflite`` file written by ``ser export``, run with the LiteRT interpreter.

    See :class:`ser.backend.Backend` for the interface; all but loading and running the
    graph is :class:`ser.onnx_backend.OnnxBackend`'s.
    """

    def __init__(self, interpreter, meta: dict, path: str):
        self.session = interpreter
        self._set_metadata(meta, path)
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ModelError(
                f"{self.path}: a graph with {len(signatures)} signatures; expected the one `ser export` writes"
            )
        (key,) = signatures
        self._check_names(signatures[key]["inputs"], signatures[key]["outputs"])
        self.runner = interpreter.get_signature_runner(key)
        self.n_outputs = len(self.labels)
        self._ran = False

    @classmethod
    def load(cls, path) -> LiteRTBackend:
        """Open a ``.tflite`` export.

        Raises
        ------
        ModelError
            Missing file, ai-edge-litert not installed, not a LiteRT model (truncated,
            damaged, another kind of file), no ``ser`` metadata, or another format version.
        """
        file = check_export_file(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                f"{file}: running a LiteRT export needs ai-edge-litert; install it with: {_INSTALL}"
            ) from None
        data = Path(file).read_bytes()
        try:
            interpreter = Interpreter(model_content=data)
            text = read_metadata_text(data)
        except ModelError:
            raise
        except Exception as exc:  # the interpreter and the flatbuffer parser report bad files their own ways
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ModelError(
                f"{file}: cannot load the LiteRT model ({reason}); the file is truncated, damaged or "
                "not a LiteRT model"
            ) from None
        return cls(interpreter, read_metadata(text, file), file)

    def _run(self, names: list[str], x: np.ndarray, m: np.ndarray) -> list[np.ndarray]:
        # the first run applies the XNNPACK delegate (3.5x faster on CPU), which announces itself
        with contextlib.nullcontext() if self._ran else _without_xnnpack_notice():
            out = self.runner(features=np.asarray(x, np.float32), mask=np.asarray(m, np.float32))
        self._ran = True
        interrupts.check()
        return [np.array(out[name]) for name in names]
