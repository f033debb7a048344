"""Attention maps: where in the spectrogram the model heard the emotion, and pictures of it.

- :mod:`ser.attention.maps`: :class:`~ser.attention.maps.AttentionMaps`,
  :func:`~ser.attention.maps.compute_attention` and the occlusion test;
- :mod:`ser.attention.plot`: the figure (:func:`~ser.attention.plot.plot_attention`);
- :mod:`ser.attention.output`: the output files, checked before any work;
- :mod:`ser.attention.command`: the ``ser attention`` command.
"""
