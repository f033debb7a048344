"""A 2-hour recording: classified in windows with bounded memory (opt-in: --runslow)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import resource

import numpy as np
import pytest
import soundfile as sf

from ser.features import FrontendConfig
from ser.model import ModelConfig, build_model

pytestmark = pytest.mark.slow


def _write_two_hours(path, rate=8000):
    """Two hours of 8 kHz int16 noise bursts, written block by block (never whole in memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as fh:
        for _ in range(120):  # 120 x 60 s
            block = rng.normal(0, 0.05, 60 * rate) * (np.arange(60 * rate) % rate < rate // 2)
            fh.write(block.astype(np.float32))


def test_two_hour_file_is_windowed_with_bounded_memory(tmp_path):
    import ser

    model = build_model(
        ["a", "b"], 64, ModelConfig(widths=(4, 4, 8, 8, 8)), frontend=FrontendConfig().to_dict()
    )
    model.save(tmp_path / "m.keras")
    wav = tmp_path / "two hours.wav"
    _write_two_hours(wav)
    clf = ser.load_model(tmp_path / "m.keras")
    warm = tmp_path / "warm.wav"
    sf.write(warm, np.random.default_rng(1).normal(0, 0.05, 8000 * 120).astype(np.float32), 8000)
    for _ in range(2):  # TensorFlow's one-off allocations (graph, thread pools) are not the file's
        clf.classify(warm, window=20.0, hop=20.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    pred = clf.classify(wav, window=20.0, hop=20.0)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert pred.duration == pytest.approx(7200.0)
    assert len(pred.segments) == 360
    assert pred.segments[-1].end == pytest.approx(7200.0)
    # The whole file at 16 kHz float32 would be 440 MiB, its spectrogram 110 MiB more.
    assert grown_mib < 200, grown_mib
