"""The packed feature store (:mod:`ser.store`): the same arrays as the in-memory lists, read lazily."""

import pickle

import numpy as np
import pytest

from tests.conftest import TINY


def _within_an_ulp(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["global", "speaker", "utterance"])
def test_prepared_views_equal_the_in_memory_normalisation(tiny_corpus, warm_cache, mode):
    from ser.data import extract_all, speed_copies
    from ser.normalization import normalize
    from ser.recipe import load_recipe
    from ser.store import CopiesView, FeatureView
    from ser.training.prepare import load_manifest, prepare_corpus

    recipe = load_recipe("synthetic", [*TINY, f"features.normalization={mode}"])
    manifest = load_manifest(recipe, tiny_corpus, skip_bad=False, decode=False, progress=False)
    data = prepare_corpus(recipe, manifest, skip_bad=False, cache_dir=warm_cache, progress=False, n_jobs=1)
    assert isinstance(data.features, FeatureView) and isinstance(data.copies, CopiesView)
    paths, speakers = manifest["path"].tolist(), manifest["speaker"].astype(str).tolist()
    raw = extract_all(paths, recipe["frontend"], cache_dir=warm_cache, progress=False, n_jobs=1)
    copies = speed_copies(
        paths, recipe["frontend"], (0.9, 1.1), cache_dir=warm_cache, progress=False, n_jobs=1
    )
    expected = normalize(raw, speakers, mode)
    # bit-identical, but for "utterance": NumPy's float64 sums over one array may differ in
    # the last bit with the array's memory alignment (seen: 1 file of 108, 1 ulp)
    same = np.testing.assert_array_equal if mode != "utterance" else _within_an_ulp
    assert len(data.features) == len(expected) == 36
    for got, want in zip(data.features, expected, strict=True):
        same(got, want)
    for j, v in enumerate((0.9, 1.1)):
        want = normalize([c[j] for c in copies], [f"{s}\x1fspeed{v:g}" for s in speakers], mode)
        for i in range(len(want)):
            same(data.copies[i][j], want[i])
    rows = [5, 1, 30]
    view = data.features.take(rows)
    np.testing.assert_array_equal(view.lengths, [len(expected[i]) for i in rows])
    np.testing.assert_array_equal(view[2], expected[30])
    np.testing.assert_array_equal(data.copies.take(rows)[0][1], data.copies[5][1])
    # a worker gets the view by its path and reads the same file
    again = pickle.loads(pickle.dumps(view))
    np.testing.assert_array_equal(again[0], expected[5])
    with pytest.raises(IndexError):
        data.copies[36]


def test_a_pack_is_written_once_and_reused(tiny_corpus, warm_cache):
    from ser.recipe import load_recipe
    from ser.training.prepare import load_manifest, prepare_corpus

    recipe = load_recipe("synthetic", TINY)
    manifest = load_manifest(recipe, tiny_corpus, skip_bad=False, decode=False, progress=False)
    first = prepare_corpus(recipe, manifest, skip_bad=False, cache_dir=warm_cache, progress=False, n_jobs=1)
    packs = sorted(warm_cache.glob("pack-*.npy"))
    assert len(packs) == 2  # the pack and its index
    stamp = first.features.store.path.stat().st_mtime_ns
    second = prepare_corpus(
        recipe, manifest[:30], skip_bad=False, cache_dir=warm_cache, progress=False, n_jobs=1
    )
    assert first.features.store.path.stat().st_mtime_ns == stamp
    assert second.features.store.path != first.features.store.path  # other files: another pack
    assert len(second.features) == 30
    # rows: every utterance, then its copies; 3 versions per file
    assert first.features.store.index.shape == (36, 3, 2)
