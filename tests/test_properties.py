"""Property-based tests (hypothesis) of the audio loader, the frontend and the padding helpers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser.audio import load_audio, prepare_waveform
from ser.constants import MIN_DURATION, SAMPLE_RATE
from ser.features import FrontendConfig, crop_or_pad, logmel, pad_batch

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: numpy dtype the samples are made in -> soundfile subtype they are written as.
SUBTYPES = {
    "int16": ("int16", "PCM_16"),
    "int24": ("int32", "PCM_24"),
    "int32": ("int32", "PCM_32"),
    "float32": ("float32", "FLOAT"),
    "float64": ("float64", "DOUBLE"),
}

FRONTEND = FrontendConfig()


def samples(rng, frames, channels, dtype):
    """Random audio in [-0.9, 0.9] of full scale, in ``dtype``."""
    y = rng.uniform(-0.9, 0.9, size=(frames, channels))
    if np.dtype(dtype).kind == "i":
        return (y * np.iinfo(dtype).max).astype(dtype)
    return y.astype(dtype)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


@SETTINGS
@given(
    duration=st.floats(MIN_DURATION, 1.5),
    rate=st.integers(8000, 96000),
    channels=st.integers(1, 6),
    kind=st.sampled_from(sorted(SUBTYPES)),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_file_loads_as_mono_float32_at_16khz(folder, duration, rate, channels, kind, seed):
    frames = int(np.ceil(duration * rate))
    dtype, subtype = SUBTYPES[kind]
    path = folder / f"{kind}_{rate}_{channels}.wav"
    sf.write(str(path), samples(np.random.default_rng(seed), frames, channels, dtype), rate, subtype=subtype)

    y = load_audio(path)
    assert y.ndim == 1 and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    assert abs(y.size - frames * SAMPLE_RATE / rate) <= 2
    assert np.abs(y).max() <= 1.0

    features = logmel(y, FRONTEND)
    assert features.shape == (1 + y.size // FRONTEND.hop_length, FRONTEND.n_mels)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


@SETTINGS
@given(
    frames=st.integers(1600, 6000),
    channels=st.integers(1, 6),
    dtype=st.sampled_from(["int16", "int32", "uint8", "float32", "float64"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_prepare_waveform_of_any_array_is_mono_float32_in_range(frames, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        y = rng.integers(0, 256, size=(frames, channels)).astype(np.uint8)
    else:
        y = samples(rng, frames, channels, dtype)
    out = prepare_waveform(y, SAMPLE_RATE)
    assert out.shape == (frames,) and out.dtype == np.float32
    assert np.abs(out).max() <= 1.0


@SETTINGS
@given(
    n=st.integers(int(MIN_DURATION * SAMPLE_RATE), 3 * SAMPLE_RATE),
    hop_ms=st.sampled_from([5.0, 10.0, 12.5, 20.0]),
    n_mels=st.integers(8, 96),
)
def test_logmel_frame_count_for_any_length_and_config(n, hop_ms, n_mels):
    config = FrontendConfig(hop_ms=hop_ms, n_mels=n_mels)
    features = logmel(np.zeros(n, np.float32), config)
    assert features.shape == (1 + n // config.hop_length, n_mels)
    assert np.all(np.isfinite(features))


@SETTINGS
@given(t=st.integers(1, 60), frames=st.integers(1, 60), start=st.none() | st.integers(-10, 70))
def test_crop_or_pad_always_gives_the_requested_length(t, frames, start):
    features = np.arange(1, t * 3 + 1, dtype=np.float32).reshape(t, 3)
    out, mask = crop_or_pad(features, frames, start=start)
    assert out.shape == (frames, 3) and mask.shape == (frames,)
    assert mask.sum() == min(t, frames)
    # real frames are a contiguous run of the input; padding is zeros
    real = out[mask > 0]
    first = int(real[0, 0] - 1) // 3
    np.testing.assert_array_equal(real, features[first : first + len(real)])
    np.testing.assert_array_equal(out[mask == 0], 0.0)


@SETTINGS
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6), multiple=st.integers(1, 16))
def test_pad_batch_holds_every_item(lengths, multiple):
    items = [np.full((t, 4), i + 1, np.float32) for i, t in enumerate(lengths)]
    batch, mask = pad_batch(items, multiple=multiple)
    assert batch.shape[1] % multiple == 0
    assert max(lengths) <= batch.shape[1] < max(lengths) + multiple
    np.testing.assert_array_equal(mask.sum(axis=1), lengths)
    for i, t in enumerate(lengths):
        np.testing.assert_array_equal(batch[i, :t], i + 1)
        np.testing.assert_array_equal(batch[i, t:], 0)
