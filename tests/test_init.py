"""Fine-tuning (``ser train --init``): weight transfer, the leak refusal, the metadata."""

import json

import numpy as np
import pytest

from ser.errors import ConfigError
from tests.conftest import TINY


def _fresh(labels, seed=7):
    from ser.model import build_model
    from ser.recipe import load_recipe

    recipe = load_recipe("synthetic", TINY)
    return build_model(labels, recipe["frontend"].n_mels, recipe["model"], seed=seed), recipe


def test_conv_blocks_are_copied_and_the_head_permuted_to_the_run_class_order(tiny_run):
    from ser.training.init import load_init, transfer_weights

    out, _ = tiny_run
    init = load_init(out)
    labels = list(reversed(init.labels))  # the same classes, another order
    model, _ = _fresh(labels)
    done = transfer_weights(model, init, labels)
    assert "head" in done and {"conv1", "bn1", "conv5", "bn5"} <= set(done)
    for name in ("conv1", "conv3", "bn2", "bn5"):
        for got, want in zip(model.get_layer(name).get_weights(), init.weights[name], strict=True):
            np.testing.assert_array_equal(got, want)
    k = len(labels)
    td_kernel, td_bias, bu_kernel, bu_bias = model.get_layer("head").get_weights()
    rank = td_kernel.shape[1] // k
    for j, label in enumerate(labels):
        i = init.labels.index(label)
        np.testing.assert_array_equal(
            td_kernel[:, j * rank : (j + 1) * rank], init.weights["head"][0][:, i * rank : (i + 1) * rank]
        )
        np.testing.assert_array_equal(
            td_bias[j * rank : (j + 1) * rank], init.weights["head"][1][i * rank : (i + 1) * rank]
        )
    np.testing.assert_array_equal(bu_kernel, init.weights["head"][2])
    np.testing.assert_array_equal(bu_bias, init.weights["head"][3])


def test_the_logits_of_a_permuted_head_are_the_init_logits_permuted(tiny_run):
    from ser.saved_model import load_keras_model
    from ser.training.init import load_init, transfer_weights

    out, _ = tiny_run
    init = load_init(out)
    original, _ = load_keras_model(out)
    labels = [init.labels[i] for i in (2, 0, 3, 1)]
    model, _ = _fresh(labels)
    transfer_weights(model, init, labels)
    model.get_layer("normalization").set_weights(original.get_layer("normalization").get_weights())
    x = np.random.default_rng(0).normal(size=(2, 80, 64)).astype("float32")
    mask = np.ones((2, 80), dtype="float32")
    want = np.asarray(original([x, mask]))[:, [2, 0, 3, 1]]
    np.testing.assert_allclose(np.asarray(model([x, mask])), want, rtol=1e-4, atol=1e-4)


def test_other_labels_get_a_fresh_head_and_other_blocks_are_refused(tiny_run):
    from ser.model import build_model
    from ser.training.init import load_init, transfer_weights

    out, _ = tiny_run
    init = load_init(out)
    labels = [*init.labels[:3], "surprise"]
    model, recipe = _fresh(labels)
    fresh = [np.array(w) for w in model.get_layer("head").get_weights()]
    done = transfer_weights(model, init, labels)
    assert "head" not in done and "conv1" in done
    for got, want in zip(model.get_layer("head").get_weights(), fresh, strict=True):
        np.testing.assert_array_equal(got, want)
    wider = build_model(labels, 64, recipe["model"].__class__(widths=[8, 8, 8, 8, 8]))
    with pytest.raises(ConfigError, match="layer 'conv1' has weights of shapes"):
        transfer_weights(wider, init, labels)


def test_an_export_cannot_be_an_init(tmp_path):
    from ser.training.init import load_init

    with pytest.raises(ConfigError, match="an export cannot be fine-tuned"):
        load_init(tmp_path / "model.onnx")


def test_an_init_that_heard_a_test_speaker_is_refused_before_anything_is_written(
    tiny_run, tiny_corpus, tmp_path
):
    from ser.training import run_recipe

    out, _ = tiny_run
    with pytest.raises(ConfigError, match=r"trained on 3 of this run's test speakers of synthetic \(spk01"):
        run_recipe("synthetic", data_root=tiny_corpus, out_dir=tmp_path / "leak", overrides=TINY, init=out)
    assert not (tmp_path / "leak").exists()


def test_an_init_without_speakers_of_the_same_corpus_is_refused():
    from ser.training.init import InitModel, check_init_leak

    old = InitModel("old.keras", ["a", "b"], {}, {"corpus": "ravdess", "recipe": "ravdess"})
    with pytest.raises(ConfigError, match="records no speakers"):
        check_init_leak(old, {"ravdess": ["Actor_13"]})
    check_init_leak(old, {"tess": ["OAF", "YAF"]})  # another corpus: nothing to leak


@pytest.fixture(scope="module")
def four_speakers(tmp_path_factory):
    from ser.corpora import synthetic

    root = tmp_path_factory.mktemp("four") / "corpus"
    synthetic.generate(root, n_speakers=4, per_class=3, seed=1)
    return root


def test_fine_tuning_on_other_speakers_records_the_init_and_its_licence(four_speakers, tmp_path):
    from ser.saved_model import load_keras_model
    from ser.training import run_recipe

    half = [*TINY, "protocol.k=2"]
    first = tmp_path / "first"
    run_recipe(
        "synthetic",
        data_root=four_speakers,
        out_dir=first,
        overrides=[*half, 'corpus.speakers=["spk01", "spk02"]'],
        progress=False,
    )
    seen = json.loads((first / "run.json").read_text())["trained_on"]
    assert seen["speakers"] == {"synthetic": ["spk01", "spk02"]}
    with pytest.raises(ConfigError, match="spk02"):  # spk02 is among the run's test speakers
        run_recipe(
            "synthetic",
            data_root=four_speakers,
            out_dir=tmp_path / "leak",
            overrides=[*half, 'corpus.speakers=["spk02", "spk03"]'],
            init=first,
        )
    second = tmp_path / "second"
    results = run_recipe(
        "synthetic",
        data_root=four_speakers,
        out_dir=second,
        overrides=[*half, 'corpus.speakers=["spk03", "spk04"]'],
        init=first,
        progress=False,
    )
    assert sorted(g for f in results["folds"] for g in f["test_speakers"]) == ["spk03", "spk04"]
    run = json.loads((second / "run.json").read_text())
    assert run["settings"]["training"]["init"] == str(first.resolve())
    assert run["trained_on"]["init"]["speakers"] == {"synthetic": ["spk01", "spk02"]}
    model, _ = load_keras_model(second)
    info = model.get_layer("ser_metadata").info
    assert info["speakers"] == {"synthetic": ["spk03", "spk04"]}
    assert info["init"]["path"] == str(first / "model.keras")
    assert info["init"]["recipe"] == "synthetic" and info["init"]["corpus"] == "synthetic"
    assert info["data_licence"] == {"synthetic": "none: generated by ser (corpora/synthetic.py)"}
    assert "init" in results["trained_on"]


def test_speakers_option_names_a_missing_speaker(tiny_corpus, tmp_path):
    from ser.training import run_recipe

    with pytest.raises(ConfigError, match="corpus.speakers names spk09, not in the corpus"):
        run_recipe(
            "synthetic",
            data_root=tiny_corpus,
            out_dir=tmp_path / "x",
            overrides=[*TINY, 'corpus.speakers=["spk01", "spk09"]'],
        )


def test_models_and_their_exports_record_the_speakers_and_licence_they_were_trained_on(tiny_run, tiny_export):
    from ser.onnx_backend import OnnxBackend

    out, results = tiny_run
    _, onnx = tiny_export
    info = OnnxBackend.load(onnx).meta["info"]
    assert info["recipe"] == "synthetic" and info["corpus"] == "synthetic"
    assert info["speakers"] == {"synthetic": ["spk01", "spk02", "spk03"]}
    assert info["data_licence"] == {"synthetic": "none: generated by ser (corpora/synthetic.py)"}
    assert "init" not in info
    assert json.loads((out / "run.json").read_text())["trained_on"]["speakers"] == info["speakers"]
    assert "Data licence of the models: synthetic" in (out / "results.md").read_text()


def test_the_command_refuses_a_leaking_init_or_an_export_in_one_line(tiny_run, tiny_corpus, tmp_path, capsys):
    from ser.cli import main

    out, _ = tiny_run
    base = ["train", "synthetic", "--data-root", str(tiny_corpus), "--jobs", "1"]
    assert main([*base, "--out", str(tmp_path / "a"), "--init", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line or "Traceback" in line]
    assert len(err) == 1 and "which would leak them into every fold" in err[0]
    assert main([*base, "--out", str(tmp_path / "b"), "--init", str(tmp_path / "m.onnx")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line or "Traceback" in line]
    assert len(err) == 1 and "an export cannot be fine-tuned" in err[0]
