"""Shared fixtures: a tiny synthetic corpus and a tiny trained run, built once per session."""

import os
import shutil
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The Ctrl-C tests need Ctrl-C to work: a shell starts a background job (``pytest &``, nohup)
# with SIGINT ignored, which the tests' own processes and subprocesses would inherit.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest

#: Recipe overrides that make training take seconds (tiny CNN, few epochs, short crops).
TINY = [
    "model.widths=[4, 8, 8, 8, 8]",
    "training.epochs=2",
    "training.patience=2",
    "training.crop_seconds=1.0",
    "training.batch_size=16",
]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow real-data tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """3 synthetic speakers x 4 emotions x 3 utterances (36 short wav files)."""
    from ser.corpora import synthetic

    root = tmp_path_factory.mktemp("synthetic") / "corpus"
    synthetic.generate(root, n_speakers=3, per_class=3, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory):
    """A finished ``ser train synthetic`` run with the tiny settings (results + model.keras)."""
    from ser.training import run_recipe

    out = tmp_path_factory.mktemp("run") / "out"
    results = run_recipe("synthetic", data_root=tiny_corpus, out_dir=out, overrides=TINY, progress=False)
    return out, results


@pytest.fixture(scope="session")
def tiny_cache(tiny_run):
    """The feature cache the tiny run filled: the features, speed copies and functionals of
    every file of ``tiny_corpus`` (keyed by file content, not path)."""
    out, _ = tiny_run
    cache = out.parent / ".ser-cache"
    assert any(cache.glob("*.npy")), cache
    return cache


@pytest.fixture
def warm_cache(tiny_cache, tmp_path):
    """``tmp_path/.ser-cache``, a copy of ``tiny_cache``: a run with ``--out`` in ``tmp_path``
    (whose default cache that is) reads the tiny corpus's features back instead of computing
    them again, as a rerun beside an earlier run does. For tests whose point is not the
    feature extraction (``tiny_run`` computes them from scratch)."""
    return shutil.copytree(tiny_cache, tmp_path / ".ser-cache")


#: Real speech for the export parity tests: the RAVDESS corpus beside the repository
#: (``../shared/corpora/ravdess``); tests that need it skip where it is absent.
RAVDESS = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "ravdess"


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """``ser export`` of the tiny run's final model (attention head, functionals head, adapted
    blocks 4 and 5): ``(model.keras, model.onnx)``."""
    from ser.export import export_model

    out, _ = tiny_run
    onnx = export_model(out, tmp_path_factory.mktemp("export") / "model.onnx")
    return out / "model.keras", onnx


@pytest.fixture(scope="session")
def tiny_tflite(tiny_run, tmp_path_factory):
    """``ser export --format tflite`` of the tiny run's final model: ``(model.keras, model.tflite)``."""
    from ser.export import export_model

    out, _ = tiny_run
    tflite = export_model(out, tmp_path_factory.mktemp("export") / "model.tflite", "tflite")
    return out / "model.keras", tflite
