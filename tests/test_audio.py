"""Tests of :mod:`ser.audio`: the bad-audio matrix, formats, rates, channels, long files."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import soundfile as sf

from ser.audio import (
    MAX_INPUT_RATE,
    MIN_INPUT_RATE,
    AudioInfo,
    audio_info,
    iter_audio_blocks,
    load_audio,
    prepare_waveform,
)
from ser.constants import MAX_LOAD_DURATION, MIN_DURATION, SAMPLE_RATE
from ser.errors import AudioError, SerError


def tone(freq=440.0, seconds=1.0, sr=SAMPLE_RATE, amp=0.5, phase=0.0):
    t = np.arange(int(round(seconds * sr))) / sr
    return amp * np.sin(2 * np.pi * freq * t + phase)


def write(path, y, sr=SAMPLE_RATE, subtype="PCM_16", **kwargs):
    sf.write(str(path), y, sr, subtype=subtype, **kwargs)
    return path


def peak_hz(y, sr=SAMPLE_RATE):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1.0 / sr)[np.argmax(spectrum)]


def raises_one_line(path, match, fn=load_audio, **kwargs):
    """``fn(path)`` raises a one-line AudioError that names the file and matches ``match``."""
    with pytest.raises(AudioError, match=match) as info:
        fn(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert isinstance(info.value, SerError)
    return message


# --------------------------------------------------------------------------- the bad-file matrix


def make_zero_bytes(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    return p


def make_text_as_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is a text file, not audio\n" * 20)
    return p


def make_truncated_header(tmp_path):
    good = write(tmp_path / "good.wav", tone())
    p = tmp_path / "cut_header.wav"
    p.write_bytes(good.read_bytes()[:30])  # the RIFF header stops inside the 'fmt ' chunk
    return p


def make_no_frames(tmp_path):
    p = write(tmp_path / "no_frames.wav", np.zeros((0, 1), np.float32))
    assert sf.info(str(p)).frames == 0 and p.stat().st_size > 0  # a valid header, no data
    return p


def make_20ms(tmp_path):
    return write(tmp_path / "click.wav", tone(seconds=0.02))


def make_low_rate(tmp_path):
    return write(tmp_path / "low_rate.wav", tone(100.0, 1.0, sr=2000), sr=2000)


def make_nan(tmp_path):
    y = tone()
    y[100] = np.nan
    return write(tmp_path / "nan.wav", y, subtype="FLOAT")


def make_inf(tmp_path):
    y = tone()
    y[5] = np.inf
    y[7] = -np.inf
    return write(tmp_path / "inf.wav", y, subtype="DOUBLE")


def make_directory(tmp_path):
    p = tmp_path / "folder.wav"
    p.mkdir()
    return p


def make_missing(tmp_path):
    return tmp_path / "missing.wav"


def make_symlink_loop(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


BAD_FILES = {
    "zero_bytes": (make_zero_bytes, r"empty file \(0 bytes\)"),
    "text_renamed_wav": (make_text_as_wav, r"not a readable audio file \(.*\); expected wav, flac, ogg"),
    "truncated_header": (make_truncated_header, r"not a readable audio file"),
    "header_without_frames": (make_no_frames, r"contains no audio frames; expected at least 0\.1 s"),
    "20ms_clip": (make_20ms, rf"too short \(20 ms\); expected at least {MIN_DURATION * 1000:.0f} ms"),
    "rate_below_4khz": (
        make_low_rate,
        rf"sample rate 2000 Hz; expected {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz",
    ),
    "nan_samples": (make_nan, r"contains 1 NaN or infinite samples; expected finite audio"),
    "inf_samples": (make_inf, r"contains 2 NaN or infinite samples; expected finite audio"),
    "directory": (make_directory, r"is a directory; expected an audio file"),
    "missing_file": (make_missing, r"file not found; expected an audio file"),
    "symlink_loop": (make_symlink_loop, r"symbolic link loop; expected an audio file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_one_line_error(tmp_path, case):
    make, match = BAD_FILES[case]
    raises_one_line(make(tmp_path), match)


@pytest.mark.parametrize(
    "case", ["zero_bytes", "text_renamed_wav", "directory", "missing_file", "nan_samples"]
)
def test_bad_file_raises_when_streamed(tmp_path, case):
    make, _ = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError, match=os.path.basename(path)) as info:
        list(iter_audio_blocks(path))
    assert "\n" not in str(info.value)


def test_truncated_data_loads_the_frames_present(tmp_path):
    good = write(tmp_path / "good.wav", tone(seconds=1.0))
    cut = tmp_path / "cut_data.wav"
    cut.write_bytes(good.read_bytes()[: 44 + 2 * 8000])  # header + the first 0.5 s of int16 data
    y = load_audio(cut)
    assert y.shape == (8000,)
    np.testing.assert_allclose(y, tone(seconds=0.5), atol=1.0 / 32768)


def test_minimum_duration_is_accepted_and_one_sample_less_is_not(tmp_path):
    n = int(MIN_DURATION * SAMPLE_RATE)
    assert load_audio(write(tmp_path / "min.wav", tone(seconds=MIN_DURATION))).shape == (n,)
    raises_one_line(write(tmp_path / "short.wav", tone(seconds=MIN_DURATION)[:-1]), r"too short \(100 ms\)")
    assert load_audio(tmp_path / "short.wav", min_duration=0.05).shape == (n - 1,)


# --------------------------------------------------------------------------- long files


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """15 minutes of 8 kHz int16 (a 440 Hz tone, 14 MB), written in a few milliseconds."""
    path = tmp_path_factory.mktemp("long") / "fifteen_minutes.wav"
    second = (tone(440.0, 1.0, sr=8000, amp=0.4) * 32767).astype(np.int16)
    with sf.SoundFile(str(path), "w", 8000, 1, "PCM_16") as f:
        for _ in range(15 * 60):
            f.write(second)
    return path


def test_load_audio_refuses_files_longer_than_max_load_duration(long_file):
    assert audio_info(long_file).duration == 900.0 > MAX_LOAD_DURATION
    raises_one_line(
        long_file, rf"too long to load whole \(900 s\); expected at most {MAX_LOAD_DURATION:.0f} s .*windows"
    )
    raises_one_line(long_file, r"expected at most 60 s", max_duration=60.0)


def test_iter_audio_blocks_streams_a_long_file_in_bounded_blocks(long_file):
    total, sizes = 0, []
    for block in iter_audio_blocks(long_file, block_seconds=60.0):
        assert block.dtype == np.float32 and block.ndim == 1
        assert np.all(np.abs(block) <= 0.41)
        sizes.append(block.size)
        total += block.size
    # 60 s of input per block gives 60 s of output, give or take the resampler's delay.
    assert max(sizes) <= 61 * SAMPLE_RATE
    assert 15 <= len(sizes) <= 17
    assert total == 900 * SAMPLE_RATE


@pytest.mark.parametrize("sr", [8000, 44100, 96000])
def test_iter_audio_blocks_concatenation_equals_load_audio(tmp_path, sr):
    rng = np.random.default_rng(sr)
    y = np.clip(rng.standard_normal(int(7.3 * sr)) * 0.2, -1, 1)
    path = write(tmp_path / "noise.wav", y, sr=sr, subtype="FLOAT")
    whole = load_audio(path, max_duration=None)
    blocks = list(iter_audio_blocks(path, block_seconds=1.0))
    assert len(blocks) >= 7
    assert max(b.size for b in blocks) <= 1.05 * SAMPLE_RATE
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape == (round(7.3 * SAMPLE_RATE),)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_iter_audio_blocks_without_resampling_is_exact(tmp_path):
    y = tone(seconds=2.5, amp=0.3)
    path = write(tmp_path / "tone.wav", y, subtype="FLOAT")
    blocks = list(iter_audio_blocks(path, block_seconds=1.0))
    assert [b.size for b in blocks] == [16000, 16000, 8000]
    np.testing.assert_array_equal(np.concatenate(blocks), y.astype(np.float32))


def test_iter_audio_blocks_rejects_a_short_file(tmp_path):
    path = write(tmp_path / "click.wav", tone(seconds=0.02))
    with pytest.raises(AudioError, match=r"click\.wav: too short \(20 ms\)"):
        list(iter_audio_blocks(path))


# --------------------------------------------------------------------------- valid content


def test_silence_is_valid_and_returned_as_zeros(tmp_path):
    y = load_audio(write(tmp_path / "silence.wav", np.zeros(8000)))
    assert y.dtype == np.float32 and y.shape == (8000,)
    assert not np.any(y)


@pytest.mark.parametrize("sr", [SAMPLE_RATE, 44100])
def test_clipped_full_scale_audio_is_valid_and_stays_in_range(tmp_path, sr):
    clipped = np.clip(3.0 * tone(220.0, 1.0, sr=sr, amp=1.0), -1.0, 1.0)
    y = load_audio(write(tmp_path / "clipped.wav", clipped, sr=sr))
    assert y.shape == (SAMPLE_RATE,)
    assert np.all(np.isfinite(y))
    assert np.abs(y).max() <= 1.0  # resampling ringing is clipped back to full scale
    assert np.abs(y).max() > 0.99


def test_float_audio_louder_than_full_scale_is_not_clipped(tmp_path):
    y = load_audio(
        write(tmp_path / "loud.wav", tone(440.0, 1.0, sr=44100, amp=2.0), sr=44100, subtype="FLOAT")
    )
    assert 1.9 < np.abs(y).max() <= 2.0


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_resampled_to_16khz_with_length_and_pitch_kept(tmp_path, sr):
    y = load_audio(write(tmp_path / f"tone_{sr}.wav", tone(440.0, 1.5, sr=sr), sr=sr))
    assert y.dtype == np.float32
    assert abs(y.size - 1.5 * SAMPLE_RATE) <= 1
    assert peak_hz(y) == pytest.approx(440.0, abs=1.0)
    assert np.abs(y[2000:-2000]).max() == pytest.approx(0.5, abs=0.01)


def test_load_audio_to_another_rate(tmp_path):
    path = write(tmp_path / "tone.wav", tone(1000.0, 1.0))
    y = load_audio(path, sample_rate=8000)
    assert y.shape == (8000,)
    assert peak_hz(y, sr=8000) == pytest.approx(1000.0, abs=1.0)


def test_six_channels_are_averaged_to_mono(tmp_path):
    rng = np.random.default_rng(6)
    channels = rng.uniform(-0.9, 0.9, size=(SAMPLE_RATE // 2, 6))
    path = write(tmp_path / "surround.wav", channels, subtype="FLOAT")
    assert audio_info(path).channels == 6
    y = load_audio(path)
    assert y.shape == (SAMPLE_RATE // 2,)
    np.testing.assert_allclose(y, channels.astype(np.float32).mean(axis=1), atol=1e-6)


@pytest.mark.parametrize(
    ("subtype", "atol"),
    [("PCM_16", 2.0 / 2**15), ("PCM_24", 2.0 / 2**23), ("PCM_32", 1e-7), ("FLOAT", 1e-7), ("DOUBLE", 1e-7)],
)
def test_sample_formats_give_the_same_waveform(tmp_path, subtype, atol):
    ref = tone(440.0, 0.5, amp=0.7) + tone(1234.0, 0.5, amp=0.2)
    path = write(tmp_path / f"{subtype}.wav", ref, subtype=subtype)
    assert audio_info(path).subtype == subtype
    y = load_audio(path)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=atol)


def test_flac_loads_losslessly(tmp_path):
    ref = tone(440.0, 1.0) + tone(3000.0, 1.0, amp=0.1)
    path = write(tmp_path / "tone.flac", ref, subtype="PCM_16", format="FLAC")
    assert audio_info(path).format == "FLAC"
    y = load_audio(path)
    np.testing.assert_array_equal(y, sf.read(str(path), dtype="float32")[0])
    # libsndfile's float -> int16 rounding for FLAC differs from WAV's by about one step.
    np.testing.assert_allclose(y, ref, atol=3.0 / 2**15)


def test_ogg_vorbis_loads_loosely_equal(tmp_path):
    ref = tone(440.0, 1.0, sr=SAMPLE_RATE)
    path = write(tmp_path / "tone.ogg", ref, subtype="VORBIS", format="OGG")
    assert audio_info(path).format == "OGG"
    y = load_audio(path)
    assert y.dtype == np.float32
    assert abs(y.size - ref.size) <= 0.01 * ref.size
    assert peak_hz(y) == pytest.approx(440.0, abs=2.0)
    n = min(y.size, ref.size)
    assert np.corrcoef(y[:n], ref[:n])[0, 1] > 0.95  # lossy, but the same sound


def test_path_with_spaces_and_non_ascii_characters(tmp_path):
    folder = tmp_path / "my recordings (2024)" / "émotions ünïcode 声音"
    folder.mkdir(parents=True)
    path = write(folder / "colère 01 — take 2.wav", tone())
    assert load_audio(path).shape == (SAMPLE_RATE,)
    assert audio_info(str(path)).path == str(path)
    raises_one_line(folder / "absent ü.wav", r"absent ü\.wav: file not found")


def test_audio_info_reads_the_header(tmp_path):
    path = write(tmp_path / "stereo.wav", np.zeros((22050, 2)), sr=44100, subtype="PCM_24")
    info = audio_info(path)
    assert info == AudioInfo(str(path), 44100, 2, 22050, "WAV", "PCM_24")
    assert info.duration == 0.5


# --------------------------------------------------------------------------- prepare_waveform


def test_prepare_waveform_scales_int16_arrays():
    y = np.tile(np.array([0, 16384, -32768, 32767, -16384], dtype=np.int16), 400)
    out = prepare_waveform(y, SAMPLE_RATE)
    assert out.dtype == np.float32 and out.shape == (2000,)
    np.testing.assert_array_equal(out[:5], [0.0, 0.5, -1.0, 32767 / 32768, -0.5])


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        (np.uint8, [128, 0, 255], [0.0, -1.0, 127 / 128]),
        (np.int32, [0, -(2**31), 2**30], [0.0, -1.0, 0.5]),
    ],
)
def test_prepare_waveform_scales_other_integer_dtypes(dtype, values, expected):
    out = prepare_waveform(np.tile(np.array(values, dtype=dtype), 600), SAMPLE_RATE)
    np.testing.assert_allclose(out[:3], expected, atol=1e-7)


def test_prepare_waveform_accepts_channels_first_and_channels_last():
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-1, 1, size=(2, 4000)).astype(np.float32)
    expected = stereo.mean(axis=0)
    np.testing.assert_allclose(prepare_waveform(stereo, SAMPLE_RATE), expected, atol=1e-7)
    np.testing.assert_allclose(prepare_waveform(stereo.T, SAMPLE_RATE), expected, atol=1e-7)


def test_prepare_waveform_resamples():
    out = prepare_waveform(tone(440.0, 1.0, sr=48000).astype(np.float32), 48000)
    assert out.shape == (SAMPLE_RATE,)
    assert peak_hz(out) == pytest.approx(440.0, abs=1.0)


@pytest.mark.parametrize("shape", [(), (2, 3, 1600)])
def test_prepare_waveform_rejects_wrong_ndim(shape):
    with pytest.raises(
        AudioError, match=r"clip: array of shape \(.*\); expected \(samples,\) or \(samples, channels\)"
    ):
        prepare_waveform(np.zeros(shape, np.float32), SAMPLE_RATE, name="clip")


@pytest.mark.parametrize("sr", [0, -16000, 1000, 500_000, 16000.0, "16000", None])
def test_prepare_waveform_rejects_bad_sample_rate(sr):
    with pytest.raises(AudioError, match=rf"<array>: sample rate {sr!r}; expected 4000-192000 Hz"):
        prepare_waveform(np.zeros(4000, np.float32), sr)


@pytest.mark.parametrize("y", [np.zeros(4000, bool), np.zeros(4000, complex), np.array(["a"] * 4000)])
def test_prepare_waveform_rejects_non_numeric_samples(y):
    with pytest.raises(AudioError, match=r"samples of dtype .*; expected integer or float samples"):
        prepare_waveform(y, SAMPLE_RATE)


@pytest.mark.parametrize("shape", [(0,), (0, 2), (2, 0)])
def test_prepare_waveform_rejects_empty_arrays(shape):
    with pytest.raises(AudioError, match=r"contains no audio samples; expected at least 0\.1 s"):
        prepare_waveform(np.zeros(shape, np.float32), SAMPLE_RATE)


def test_prepare_waveform_rejects_non_finite_and_short_arrays():
    y = np.zeros(4000, np.float32)
    y[[1, 2, 3]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(AudioError, match=r"contains 3 NaN or infinite samples"):
        prepare_waveform(y, SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"too short \(50 ms\); expected at least 100 ms"):
        prepare_waveform(np.zeros(800, np.float32), SAMPLE_RATE)


def test_samples_far_beyond_full_scale_are_refused(tmp_path):
    # a corrupted float file: the spectrogram's power would overflow to inf
    path = tmp_path / "huge.wav"
    sf.write(path, np.full(SAMPLE_RATE, 3e21, np.float32), SAMPLE_RATE, subtype="FLOAT")
    match = (
        r"huge\.wav: samples reach 3e\+21 \(430 dB above full scale\); expected audio scaled to about -1\.\.1"
    )
    with pytest.raises(AudioError, match=match):
        load_audio(path)
    with pytest.raises(AudioError, match=match):
        list(iter_audio_blocks(path))
    # a float file a little over full scale is fine
    sf.write(path, np.full(SAMPLE_RATE, 4.0, np.float32), SAMPLE_RATE, subtype="FLOAT")
    assert load_audio(path).max() == pytest.approx(4.0)


def test_a_file_with_many_channels_and_few_frames_is_not_read_transposed(tmp_path):
    # soundfile gives (frames, channels): 20 frames of 64 channels are 5 ms, not 64 frames
    path = tmp_path / "wide.wav"
    sf.write(path, np.zeros((20, 64), np.float32), 4000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"wide\.wav: too short \(5 ms\)"):
        load_audio(path)


def test_a_wav_cut_short_is_read_and_noted(tmp_path):
    # e.g. an interrupted copy: the header promises more than the file holds
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros(3 * SAMPLE_RATE, np.int16), SAMPLE_RATE, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * SAMPLE_RATE])  # the first second
    info = audio_info(path)
    assert info.frames == SAMPLE_RATE and info.promised_frames == 3 * SAMPLE_RATE
    assert info.truncation_note() == (
        f"note: {path}: cut short: its header promises 3.00 s, the file holds 1.00 s (an interrupted "
        "copy?); using what is there"
    )
    assert load_audio(path).size == SAMPLE_RATE
    whole = tmp_path / "whole.wav"
    whole.write_bytes(data)
    assert audio_info(whole).promised_frames is None and audio_info(whole).truncation_note() is None


def test_many_channels_are_read_a_bounded_number_of_samples_at_a_time(tmp_path, monkeypatch):
    # a file of 64 channels takes the memory of its mono mix, not 64 times it: every read
    # (load_audio, iter_audio_blocks, ser attention's range) asks for at most READ_SAMPLES samples
    import ser.audio
    from ser.preprocessor import read_frames

    rng = np.random.default_rng(0)
    y = (rng.standard_normal((2 * SAMPLE_RATE, 64)) * 0.1).astype(np.float32)
    path = write(tmp_path / "wide.wav", y, subtype="FLOAT")
    monkeypatch.setattr(ser.audio, "READ_SAMPLES", 64 * 1000)
    asked = []
    read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        asked.append(frames * self.channels)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    mono = y.mean(axis=1)
    np.testing.assert_allclose(load_audio(path), mono, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(list(iter_audio_blocks(path))), mono, atol=1e-6)
    np.testing.assert_allclose(read_frames(str(path), 100, 5100), mono[100:5100], atol=1e-6)
    assert len(asked) >= 2 * 32 + 5 and all(0 < n <= 64 * 1000 for n in asked)


def test_is_silent_is_no_sample_above_the_silence_peak():
    from ser.audio import is_silent
    from ser.constants import SILENCE_PEAK

    assert is_silent(np.zeros(100, np.float32)) and is_silent(np.zeros(0, np.float32))
    assert is_silent(np.full(10, SILENCE_PEAK, np.float32))
    assert not is_silent(np.array([0.0, -2 * SILENCE_PEAK]))
