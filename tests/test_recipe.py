import pytest

from ser.errors import ConfigError
from ser.recipe import RECIPES_DIR, apply_overrides, load_recipe, recipe_to_dict

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def test_every_shipped_recipe_loads_and_has_a_readme():
    names = sorted(d.name for d in RECIPES_DIR.iterdir() if (d / "recipe.toml").is_file())
    assert {"ravdess", "emodb", "iemocap", "cremad", "tess", "savee", "urdu", "custom", "synthetic"} <= set(
        names
    )
    for name in names:
        r = load_recipe(name)
        assert r["corpus"]["name"]
        assert (RECIPES_DIR / name / "README.md").is_file(), name


def test_every_shipped_recipe_states_every_setting_it_resolves_to():
    for path in sorted(RECIPES_DIR.glob("*/recipe.toml")):
        stated = tomllib.loads(path.read_text(encoding="utf-8"))
        resolved = recipe_to_dict(load_recipe(path.parent.name))
        for section in ("frontend", "features", "model", "training"):
            assert set(stated[section]) == set(resolved[section]), (path, section)


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


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("training.epochs=ten", r"training.epochs must be an integer. Received: epochs='ten'"),
        ("training.epochs=10.5", r"training.epochs must be an integer. Received: epochs=10.5"),
        ("training.batch_size=true", r"training.batch_size must be an integer. Received: batch_size=True"),
        (
            "training.learning_rate=fast",
            r"training.learning_rate must be a number. Received: learning_rate='fast'",
        ),
        (
            "training.spec_augment=yes",
            r"training.spec_augment must be true or false. Received: spec_augment='yes'",
        ),
        ("training.weight_decay=-1.0", r"training.weight_decay must be >= 0. Received: weight_decay=-1.0"),
        ("training.seed=-3", r"training.seed must be >= 0. Received: seed=-3"),
        ("training.mixup=-0.2", r"training.mixup must be >= 0. Received: mixup=-0.2"),
        ("training.mixup=lots", r"training.mixup must be a number. Received: mixup='lots'"),
        (
            "training.time_mask_width=-5",
            r"time_mask_width must be >= 0. Received: freq_mask_width=8, time_mask_width=-5",
        ),
        (
            "training.freq_mask_width=wide",
            r"training.freq_mask_width must be an integer. Received: freq_mask_width='wide'",
        ),
        (
            "model.strided_blocks=1.5",
            r"strided_blocks must be an integer from 0 to 5. Received: strided_blocks=1.5",
        ),
        ("model.widths=abc", r"widths must be integers. Received: widths='abc'"),
        ('model.pools=[[2,2],[2,2],[2,2],[2,1],[1,"a"]]', r"pools must be 5 \(time, freq\) pairs >= 1"),
        ("model.rank=true", r"rank must be a positive integer. Received: rank=True"),
        ("corpus.options=3", r"corpus.options must be a table.*Received: options=3"),
        ("corpus.root=/data", r"unknown setting\(s\) \['corpus.root'\]"),
        ("protocol.k=five", r"protocol.k must be an integer >= 2. Received: k='five'"),
        ("protocol.seed=1.5", r"protocol.seed must be an integer >= 0. Received: seed=1.5"),
        ("protocol.validation_fraction=1.5", r"validation_fraction must be a number in \(0, 1\)"),
        ("protocol.validation_min_groups=1", r"validation_min_groups must be an integer >= 2"),
        ("protocol.kind=random", r"protocol kind must be one of"),
        ("protocol.folds=3", r"unknown setting\(s\) \['protocol.folds'\]"),
    ],
)
def test_wrong_types_are_config_errors(override, match):
    """A value of the wrong type fails at load time with a one-line message naming it."""
    with pytest.raises(ConfigError, match=match):
        load_recipe("synthetic", [override])


def test_section_that_is_not_a_table(tmp_path):
    (tmp_path / "recipe.toml").write_text('training = 3\n[corpus]\nname = "emodb"\n')
    with pytest.raises(ConfigError, match=r"\[training\] must be a table of settings. Received: training=3"):
        load_recipe(str(tmp_path))
