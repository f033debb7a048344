import pytest

from ser.errors import ConfigError
from ser.recipe import RECIPES_DIR, apply_overrides, load_recipe


def test_every_shipped_recipe_loads_and_has_a_readme():
    names = sorted(d.name for d in RECIPES_DIR.iterdir() if (d / "recipe.toml").is_file())
    assert {"ravdess", "emodb", "iemocap", "cremad", "tess", "savee", "urdu", "custom", "synthetic"} <= set(
        names
    )
    for name in names:
        r = load_recipe(name)
        assert r["corpus"]["name"]
        assert (RECIPES_DIR / name / "README.md").is_file(), name


def test_overrides_are_typed():
    r = load_recipe("synthetic", ["training.epochs=3", "model.head=average", "model.widths=[4,4,8,8,8]"])
    assert r["training"].epochs == 3
    assert r["model"].head == "average"
    assert r["model"].widths == (4, 4, 8, 8, 8)


def test_override_errors():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["training.epochs"])
    with pytest.raises(ConfigError, match="must start with one of"):
        apply_overrides({}, ["epochs=3"])
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['training.epoch'\]"):
        load_recipe("synthetic", ["training.epoch=3"])
    with pytest.raises(ConfigError, match="head must be one of"):
        load_recipe("synthetic", ["model.head=lstm"])
    with pytest.raises(ConfigError, match="normalization must be one of"):
        load_recipe("synthetic", ["features.normalization=magic"])


def test_recipe_from_folder(tmp_path):
    (tmp_path / "recipe.toml").write_text('[corpus]\nname = "emodb"\n[training]\nepochs = 5\n')
    r = load_recipe(str(tmp_path))
    assert r["corpus"]["name"] == "emodb"
    assert r["training"].epochs == 5
    assert r["protocol"]["kind"] == "leave_one_group_out"
