"""The corpus a run trains on (:mod:`ser.training.prepare`)."""

import pytest

from tests.conftest import TINY


def test_prepare_gives_every_kept_file_its_speed_copies_normalised_as_its_own(
    tiny_corpus, tmp_path, monkeypatch
):
    import shutil

    import numpy as np
    import soundfile as sf

    import ser.training.prepare
    from ser.corpora import CorpusWarning
    from ser.data import UnusableAudio
    from ser.errors import AudioError
    from ser.recipe import load_recipe
    from ser.training.prepare import load_manifest, prepare_corpus

    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    sf.write(root / "spk01" / "spk01_angry_01.wav", np.zeros(16000, np.float32), 16000)  # silent
    recipe = load_recipe("synthetic", [*TINY, "features.normalization=speaker"])
    with pytest.warns(CorpusWarning, match=r"unusable audio \(1\):\n  spk01/spk01_angry_01.wav: silent"):
        loaded = load_manifest(recipe, root, skip_bad=True, progress=False)
    data = prepare_corpus(recipe, loaded, skip_bad=True, cache_dir=tmp_path / "cache", progress=False)
    manifest, features, y, functionals, copies = (
        data.manifest,
        data.features,
        data.y,
        data.functionals,
        data.copies,
    )
    assert len(manifest) == len(features) == len(y) == len(functionals) == len(copies) == 35
    speakers = manifest["speaker"].astype(str).to_numpy()
    for f, (slow, fast) in zip(features, copies, strict=True):
        assert slow.shape[0] > f.shape[0] > fast.shape[0]
    for j in range(2):  # each speed of a speaker is standardised as a speaker of its own
        for s in set(speakers):
            frames = np.concatenate([copies[i][j] for i in np.flatnonzero(speakers == s)])
            np.testing.assert_allclose(frames.mean(0), 0, atol=1e-3)
    # a file found unusable only when its copies are made is dropped everywhere with --skip-bad
    real = ser.training.prepare.speed_copies

    def failing(paths, *args, **kwargs):
        out = real(paths, *args, **kwargs)
        error = AudioError(f"{paths[3]}: silent (no sample above -80 dB full scale)")
        raise UnusableAudio({3: error}, [None if i == 3 else c for i, c in enumerate(out)])

    monkeypatch.setattr(ser.training.prepare, "speed_copies", failing)  # (imported there)
    with pytest.warns(
        CorpusWarning, match=r"skipped the 1 file\(s\) listed out of 35; using the remaining 34"
    ):
        data2 = prepare_corpus(recipe, loaded, skip_bad=True, cache_dir=tmp_path / "cache", progress=False)
    manifest2, features2, y2 = data2.manifest, data2.features, data2.y
    functionals2, copies2 = data2.functionals, data2.copies
    assert len(manifest2) == len(features2) == len(y2) == len(functionals2) == len(copies2) == 34
    assert manifest["path"].iloc[3] not in set(manifest2["path"])
    np.testing.assert_array_equal(functionals2[3], functionals[4])
