"""ser: speech emotion recognition with a CNN and attentional pooling (Keras 3).

The package imports nothing heavy at start-up; :func:`load_model` brings in Keras.
"""

__version__ = "0.1.0"


def load_model(path):
    """Load a trained ``ser`` model (a ``model.keras`` file or a run folder holding one).

    Returns a :class:`ser.inference.EmotionClassifier`; see its ``classify`` method.
    """
    from ser.inference import EmotionClassifier

    return EmotionClassifier.load(path)


__all__ = ["__version__", "load_model"]
