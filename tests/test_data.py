"""Tests of :mod:`ser.data`: the feature cache, full training batches and mixup."""

import os

import numpy as np
import pytest

from ser.data import CropBatches


def utterances(lengths, n_mels=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((t, n_mels)).astype(np.float32) for t in lengths]


@pytest.mark.parametrize(("n", "batch"), [(70, 32), (64, 32), (33, 32), (5, 8)])
def test_every_batch_has_one_shape_and_every_utterance_is_seen(n, batch):
    feats = utterances([30 + i % 7 for i in range(n)])
    for i, f in enumerate(feats):
        f[:] = i  # each crop carries its utterance number
    batches = CropBatches(feats, np.arange(n) % 3, 20, batch, augment=False, seed=1)
    for _ in range(3):
        seen, shapes = [], set()
        for (x, _mask), y in batches.epoch():
            shapes.add(x.shape)
            seen.extend(int(v) for v in x[:, 0, 0])
            np.testing.assert_array_equal(y, np.asarray(seen[-len(y) :]) % 3)
        assert len(shapes) == 1  # one traced training step per model
        assert set(seen) == set(range(n))
        assert len(seen) == len(batches) * min(batch, n)
        # the filler repeats utterances from the rest of the epoch, never the last batch's own
        assert len(seen) - len(set(seen)) == len(seen) - n
        last = seen[-min(batch, n) :]
        assert len(set(last)) == len(last)


def test_spec_augment_mask_widths_are_configurable():
    """Wider masks blank more of a crop; zero widths leave it untouched."""
    from ser.data import CropBatches

    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((200, 32)).astype(np.float32) + 5 for _ in range(64)]
    labels = np.zeros(64, dtype=np.int32)

    def changed(widths):
        batches = CropBatches(feats, labels, 100, 16, augment=True, seed=1, mask_widths=widths)
        total = 0
        for (x, _), _ in batches.epoch():
            total += int((np.diff(x, axis=1) == 0).sum())
        return total

    assert changed((0, 0)) == 0
    assert changed((16, 20)) > changed((4, 5)) > 0


def test_crops_come_from_the_utterance_or_its_speed_copies_each_as_likely():
    n = 40
    feats = utterances([30] * n)
    copies = []
    for i, f in enumerate(feats):
        f[:] = i  # the utterance itself
        copies.append(tuple(np.full((27 + 6 * j, 4), 1000 * (j + 1) + i, np.float32) for j in range(2)))
    batches = CropBatches(feats, np.arange(n), 20, 8, augment=False, seed=1, copies=copies)
    versions = []
    for _ in range(30):
        for (x, _mask), y in batches.epoch():
            values = x[:, 0, 0].astype(int)
            np.testing.assert_array_equal(y, values % 1000)  # a copy is its own file's, with its label
            versions.extend(values // 1000)
    counts = np.bincount(versions, minlength=3)
    assert counts.sum() == 30 * n and counts.min() > 0.28 * counts.sum()
    with pytest.raises(ValueError, match="copies: 39 entries for 40 utterances"):
        CropBatches(feats, np.arange(n) % 3, 20, 8, copies=copies[1:])


def test_speed_copies_are_cached_and_as_long_as_their_speed(tmp_path, monkeypatch):
    import soundfile as sf

    import ser.data
    from ser.augment import speed_perturbed
    from ser.data import UnusableAudio, speed_copies
    from ser.features import FrontendConfig, model_input

    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"{i}.wav"))
        tone = 0.3 * np.sin(2 * np.pi * (150 + 50 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        sf.write(paths[-1], tone.astype(np.float32), sr)
    cache = tmp_path / "cache"
    out = speed_copies(paths, FrontendConfig(), (0.9, 1.1), cache_dir=cache, progress=False, n_jobs=1)
    own = model_input(ser.data.usable_audio(paths[1], sr), FrontendConfig())
    slow, fast = out[1]
    assert slow.shape[0] > own.shape[0] > fast.shape[0]
    assert abs(slow.shape[0] * 0.9 - own.shape[0]) <= 3 and abs(fast.shape[0] * 1.1 - own.shape[0]) <= 3
    y = ser.data.usable_audio(paths[1], sr)
    np.testing.assert_array_equal(fast, model_input(speed_perturbed(y, sr, 1.1), FrontendConfig()))

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(ser.data, "model_input", fail)
    again = speed_copies(paths, FrontendConfig(), (0.9, 1.1), cache_dir=cache, progress=False, n_jobs=1)
    for a, b in zip(again, out, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    monkeypatch.undo()
    sf.write(paths[0], np.zeros(sr, np.float32), sr)  # now silent
    with pytest.raises(UnusableAudio, match=r"0\.wav: silent"):
        speed_copies(paths, FrontendConfig(), (0.9,), cache_dir=cache, progress=False, n_jobs=1)


def test_without_copies_the_crops_are_those_of_before_copies_existed():
    feats = []
    for i, t in enumerate([30, 41, 25, 52, 33, 47]):
        f = np.zeros((t, 4), np.float32)
        f[:, 0] = 100 * i + np.arange(t)
        feats.append(f)
    # recorded with the code before speed copies existed (commit 17c4b0b): the same random
    # stream, crops and masks
    before = [52, 519, 105, 116, 321, 2, 412, 117, 103, 29, 4, 202, 81, 133, 408, 8]
    for copies in (None, [()] * 6):
        batches = CropBatches(feats, np.arange(6) % 3, 20, 4, augment=True, seed=3, copies=copies)
        values = []
        for _ in range(2):
            for (x, _mask), _y in batches.epoch():
                values.extend(int(v) for v in x[:, 0, 0])
        assert values == before


def test_a_damaged_feature_cache_file_is_recomputed(tmp_path):
    import numpy as np
    import soundfile as sf

    from ser.data import _cache_key, _cached
    from ser.features import FrontendConfig

    wav = tmp_path / "a.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), 16000)
    frontend = FrontendConfig()
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / f"{_cache_key(str(wav), frontend)}.npy"
    target.write_bytes(b"")  # e.g. a crash before the disk flushed the file
    feats = _cached(str(wav), frontend, cache)
    assert feats.shape[1] == 64 and feats.dtype == np.float32
    np.testing.assert_array_equal(np.load(target), feats)


def test_the_feature_cache_follows_a_files_content_not_its_path_or_time(tmp_path):
    """A corpus copied elsewhere (new paths and times) reads its cached features back; a
    file rewritten with other samples of the same size does not."""
    import shutil
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    from ser.data import _cache_key
    from ser.features import FrontendConfig

    frontend = FrontendConfig()
    wav = tmp_path / "a.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), 16000)
    key = _cache_key(str(wav), frontend)
    (tmp_path / "copy").mkdir()
    copied = Path(shutil.copy(wav, tmp_path / "copy" / "b.wav"))
    os.utime(copied, ns=(1, 1))
    assert _cache_key(str(copied), frontend) == key
    sf.write(wav, 0.1 * np.sin(np.arange(8000) / 7.0).astype(np.float32), 16000)
    os.utime(wav, ns=(1, 1))
    assert _cache_key(str(wav), frontend) != key
