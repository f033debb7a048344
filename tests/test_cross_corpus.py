"""``ser evaluate``: a trained model scored on a corpus it was not trained on, with no training."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ser.cli import main
from tests.corpora import fixtures as fx


@pytest.fixture(scope="module")
def tess_root(tmp_path_factory):
    """The TESS fixture (2 speakers x 7 emotions x 3 words) and one silent file of OAF's."""
    root = fx.make_tess(tmp_path_factory.mktemp("tess") / "tess")
    sf.write(root / "OAF_angry" / "OAF_hush_angry.wav", np.zeros(8000, np.float32), 16000)
    return root


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_keras_model_on_another_corpus(tiny_run, tess_root, tmp_path, capsys):
    run, _ = tiny_run  # trained on the synthetic corpus: angry, happy, neutral, sad
    out = tmp_path / "eval"
    code = main(
        ["evaluate", str(run), "tess", "--data-root", str(tess_root), "--out", str(out), "--skip-bad"]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    r = _results(out)
    assert r["labels"]["pairs"] == {c: c for c in ("angry", "happy", "neutral", "sad")}
    assert r["labels"]["corpus_only"] == ["disgust", "fear", "surprise"]
    assert r["labels"]["model_only"] == []
    assert (
        "ser evaluate: warning: 18 files of disgust, fear, surprise left out: no model class matches" in err
    )
    # the silent file cannot be classified: listed, left out (and accepted with --skip-bad)
    assert list(r["skipped"]) == [str(tess_root / "OAF_angry" / "OAF_hush_angry.wav")]
    assert "silent" in next(iter(r["skipped"].values()))
    assert [(f["test_speakers"], f["n"]) for f in r["folds"]] == [(["OAF"], 12), (["YAF"], 12)]
    cm = np.array(r["pooled"]["confusion"])
    assert cm.shape == (4, 4) and cm.sum() == 24 and cm.sum(axis=1).tolist() == [6, 6, 6, 6]
    assert r["pooled"]["wa"] == pytest.approx(np.trace(cm) / 24)
    assert r["chance"] == {"ua": 0.25, "wa": 0.25}
    assert set(r["per_class_recall"]) == {"angry", "happy", "neutral", "sad"}
    sa = r["speaker_adapted"]
    assert sa["available"] and np.array(sa["pooled"]["confusion"]).sum() == 24
    assert all("adapted" in f for f in r["folds"])
    md = (out / "results.md").read_text()
    assert "Left out (no model class matches): disgust, fear, surprise." in md and "| OAF | 12 |" in md
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_scores_agree_with_classify(tiny_run, tiny_corpus, tmp_path):
    import warnings

    from ser.classifier import EmotionClassifier
    from ser.corpora import load_corpus
    from ser.cross_corpus import evaluate_model

    run, _ = tiny_run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = evaluate_model(
            str(run), "synthetic", data_root=tiny_corpus, out_dir=tmp_path / "e", progress=False
        )
    assert any(
        "trained on synthetic: these scores include its training speakers" in str(w.message) for w in caught
    )
    manifest = load_corpus("synthetic", tiny_corpus)
    clf = EmotionClassifier.load(run)
    right = [
        clf.classify(p).label == label for p, label in zip(manifest["path"], manifest["label"], strict=True)
    ]
    assert r["pooled"]["wa"] == pytest.approx(np.mean(right))
    assert r["wa_mean"] == pytest.approx(np.mean([f["wa"] for f in r["folds"]]))


def test_default_export_runs_without_tensorflow(tmp_path):
    root = fx.make_ravdess(tmp_path / "ravdess")
    out = tmp_path / "eval"
    code = (
        "import sys; from ser.cli import main\n"
        f"rc = main(['evaluate', 'default', 'ravdess', '--data-root', {str(root)!r}, '--out', {str(out)!r},"
        " '--map', 'calm='])\n"
        "print(rc, 'tensorflow' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip().splitlines()[-1] == "0 False", run.stderr
    r = _results(out)
    assert r["labels"]["corpus_only"] == ["calm"] and r["labels"]["model_only"] == ["calm"]
    assert r["labels"]["overrides"] == {"calm": None}
    assert r["speaker_adapted"]["available"] is False
    assert r["speaker_adapted"]["reason"].startswith("not available for exports")
    assert np.array(r["pooled"]["confusion"]).shape == (8, 8)
    assert sum(f["n"] for f in r["folds"]) == 42  # 48 files, less the 6 calm ones
    assert "Speaker-adapted scores: not available for exports" in (out / "results.md").read_text()


def test_map_pairs_a_corpus_label_with_another_class(tmp_path):
    from ser.cross_corpus import evaluate_model

    root = fx.make_ravdess(tmp_path / "ravdess", actors=(1,))
    r = evaluate_model(
        "default", "ravdess", data_root=root, out_dir=tmp_path / "e", mapping=["calm=neutral"], progress=False
    )
    assert r["labels"]["pairs"]["calm"] == "neutral" and r["labels"]["model_only"] == ["calm"]
    neutral = r["classes"].index("neutral")
    assert np.array(r["pooled"]["confusion"])[neutral].sum() == 4  # 2 neutral and 2 calm files


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["default", "nosuch"], "nosuch"),
        (["default", "tess", "--map", "angry"], "--map expects FROM=TO"),
        (["default", "tess", "--map", "angry=bliss"], "'bliss' is not a model class"),
        (["default", "custom"], "share none with the model's classes"),
        (["default", "tess", "--data-root-empty"], "no audio"),
    ],
)
def test_bad_input_is_one_line(args, message, tess_root, tmp_path, capsys):
    if args[1] == "custom":
        root = fx.make_class_folders(tmp_path / "custom", {"Jealous": 3, "Bored": 2})
    elif args[-1] == "--data-root-empty":
        args, root = args[:-1], tmp_path / "empty"
        root.mkdir()
    else:
        root = tess_root
    code = main(["evaluate", *args, "--data-root", str(root), "--out", str(tmp_path / "o"), "--skip-bad"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("ser evaluate: error: ") and message in err[-1], err
    assert not (tmp_path / "o" / "results.json").exists()


def test_files_that_cannot_be_classified_fail_the_command_after_the_results(tess_root, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["evaluate", "default", "tess", "--data-root", str(tess_root), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ser evaluate: 1 file(s) could not be classified and were left out")
    assert _results(out)["pooled"]["confusion"]  # the other files' scores are written


def test_a_corpus_with_no_usable_file_is_one_line(tmp_path, capsys):
    root = fx.make_class_folders(tmp_path / "custom", {"Angry": 2, "Happy": 2})
    for path in root.rglob("*.wav"):
        sf.write(path, np.zeros(8000, np.float32), 16000)
    assert (
        main(["evaluate", "default", "custom", "--data-root", str(root), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ser evaluate: error: none of the 4 files could be classified; e.g. ")
    assert "silent" in err[-1]
