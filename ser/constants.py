"""Constants used across ``ser``, kept in one place."""

#: Sample rate (Hz) every waveform is converted to before feature extraction.
SAMPLE_RATE = 16000

#: Shortest audio the model accepts, in seconds. Shorter input is rejected with an error.
MIN_DURATION = 0.1

#: Longest audio :func:`ser.audio.load_audio` reads whole, in seconds. Longer files are
#: processed block by block (see :func:`ser.audio.iter_audio_blocks`).
MAX_LOAD_DURATION = 600.0

#: A recording (or array) classified whole with no sample above this magnitude (-80 dB
#: full scale) is silent: an error, not a confident guess (and not a file to train on).
#: Long audio classified in windows may hold silent stretches; their windows are
#: classified as they are.
SILENCE_PEAK = 1e-4

#: File extensions treated as audio when scanning corpus folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")

#: Fewest recordings of one speaker that label-free speaker adaptation (batch-norm statistics,
#: :mod:`ser.adaptation`; the per-speaker functionals regression, :mod:`ser.fusion`) uses; with
#: fewer, the statistics are too noisy (one file is then normalised by itself) and the
#: unadapted model is used.
MIN_ADAPTATION_FILES = 5

#: Format of what ``ser train`` writes: ``model.keras`` (in its ``ser_metadata`` info) and
#: ``run.json`` carry it as ``format_version``; :func:`ser.io.check_format_version` refuses
#: any other. Raise it when either file changes in a way this code cannot read.
FORMAT_VERSION = 1
