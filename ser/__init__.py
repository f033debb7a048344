"""ser: speech emotion recognition with a CNN and attentional pooling (Keras 3).

The package imports nothing heavy at start-up; :func:`load_model` brings in Keras for a
``model.keras`` and ONNX Runtime (never TensorFlow) for an export (``ser export``).

Import rule: a module imports its sibling ``ser`` modules at the top of the file, and only in
one direction, lower to higher::

    errors, constants, io, checks, interrupts, labels, pool -> audio, dsp -> features, augment
    -> normalization -> store -> functionals -> layers -> model -> runtime -> adaptation, fusion -> data
    -> saved_model, exported -> keras_backend, onnx_backend -> backend -> preprocessor
    -> windows -> classifier -> speaker -> attention, export, training -> serve -> demo, models,
    cross_corpus -> cli

Heavy third-party libraries (TensorFlow, Keras, librosa, matplotlib, scikit-learn, joblib)
are imported inside the functions that use them, so ``ser --help`` and importing ``ser.cli``
never load them. The features (:mod:`ser.dsp`) need numpy alone: classifying with an export
loads neither librosa, numba nor SciPy. :mod:`ser.layers` defines Keras layers and so imports
Keras at its top: it counts as heavy and is imported where a model is built or loaded.
"""

__version__ = "0.1.0"


def load_model(path=None):
    """Load a trained ``ser`` model (a ``model.keras`` file, a run folder holding one, or an
    export of one: a ``.onnx`` file written by ``ser export``); without ``path``, the default
    model shipped with ``ser`` (:mod:`ser.models`: trained on RAVDESS, acted English;
    CC BY-NC-SA 4.0, non-commercial).

    Returns a :class:`ser.classifier.EmotionClassifier`; see its ``classify`` method.
    """
    from ser.classifier import EmotionClassifier

    if path is None:
        from ser.models import default_model_path

        path = default_model_path()
    return EmotionClassifier.load(path)


__all__ = ["__version__", "load_model"]
