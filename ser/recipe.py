"""Recipes: a TOML file per corpus -> one validated, fully resolved settings dict.

Config flows one way: ``recipes/<name>/recipe.toml`` (+ ``--set key=value`` overrides) ->
:func:`load_recipe` -> dataclasses (:class:`~ser.features.FrontendConfig`,
:class:`~ser.model.ModelConfig`, :class:`TrainingConfig`) -> constructor arguments.

Each shipped ``recipe.toml`` states every hyperparameter that defines it, section by section
(``[frontend]``, ``[features]``, ``[model]``, ``[training]``), as SpeechBrain's hparams files
do. The defaults live in one documented place, the fields of those three dataclasses; a recipe
of your own may leave out any setting to take its default. ``run.json`` records the resolved
values of a run (:func:`recipe_to_dict`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

import ser.recipes
from ser.augment import speed_factors
from ser.corpora import get_corpus
from ser.errors import ConfigError
from ser.features import FrontendConfig
from ser.model import ModelConfig
from ser.normalization import NORMALIZATIONS
from ser.protocol import check_protocol

#: Where the recipes shipped with ``ser`` live: the package data of :mod:`ser.recipes`
#: (the repository's ``recipes/`` folder, installed under ``ser``).
RECIPES_DIR = Path(ser.recipes.__file__).resolve().parent

SECTIONS = ("corpus", "protocol", "frontend", "features", "model", "training")


@dataclass(frozen=True)
class TrainingConfig:
    """How one fold is trained.

    Attributes
    ----------
    epochs : int
        Length of the schedule; the weights of the best validation epoch are kept (see ``keep``).
    batch_size : int
        Crops per optimiser step.
    learning_rate : float
        Peak learning rate of AdamW (linear warm-up for one epoch, then cosine decay).
    weight_decay : float
        AdamW's decoupled weight decay.
    patience : int
        Stop when validation UA has not improved for this many epochs; ``0`` (the default)
        never stops early: with a cosine schedule the last epochs, at a small learning rate,
        are usually the best.
    crop_seconds : float
        Training crops are this long (random start each epoch); evaluation uses whole utterances.
    spec_augment : bool
        Mask random frequency bands and time spans of each training crop (two of each).
    freq_mask_width, time_mask_width : int
        Largest width of a SpecAugment mask, in mel bands and in frames.
    class_weight : {"balanced", "none"}
        ``"balanced"`` weighs each crop's loss by the inverse frequency of its class.
    label_smoothing : float
        In ``[0, 1)``.
    mixup : float
        Alpha of the Beta distribution of mixup (Zhang et al., ICLR 2018): each training
        crop is blended with another of its batch, features and targets alike; ``0`` turns
        it off.
    seed : int
        Seed of the initial weights, crops, augmentation, dropout and validation speakers.
    members : int
        Models trained per fold (and for the final model), averaged into one ensemble (1-16):
        member ``j`` (0-based) is trained exactly as a run with ``seed + j`` would train it
        (its own initial weights, crops and validation speakers, drawn from the fold's
        training speakers). Its cost is ``members`` times the training time.
    keep : {"best", "last"}
        The weights a training run keeps: those of the epoch with the best validation UA, or
        those of its last epoch. The validation scores of the best epoch are optimistic for
        the CNN, and they also choose the fusion weights of the functionals head; ``"last"``
        makes them an unbiased held-out estimate.
    init : str
        A trained model (``model.keras`` or a run folder) whose weights every model of the run
        starts from (fine-tuning, :mod:`ser.training.init`; ``ser train --init``); ``""``
        (the default): random weights.
    speeds : tuple of float
        Speed perturbation of the CNN's training crops (Ko et al., 2015): each training
        recording also exists played this many times faster (resampled, so pitch, formants
        and tempo move together, as they differ between speakers), and each crop is cut from
        the recording or one of its copies, each as likely; an epoch is as long as without.
        Validation and test recordings are never perturbed. ``()`` turns it off.
    distribute : {"none", "mirrored", "multi_worker"}
        Train each model over several devices with ``tf.distribute`` (``MirroredStrategy``:
        this machine's GPUs; ``MultiWorkerMirroredStrategy``: the machines of ``TF_CONFIG``);
        ``batch_size`` is then per replica and the learning rate is scaled by the replicas
        (:mod:`ser.training.distribute`). Left out of a run's settings when ``"none"``.

    What each default was chosen against, with the measurements, is in the recipe READMEs
    ("What we tried") and ``docs/history.md``.
    """

    epochs: int = 35
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 0
    crop_seconds: float = 2.0
    spec_augment: bool = True
    freq_mask_width: int = 8
    time_mask_width: int = 20
    class_weight: str = "balanced"
    label_smoothing: float = 0.1
    mixup: float = 0.0
    seed: int = 0
    members: int = 1
    keep: str = "best"
    speeds: tuple = (0.9, 1.1)
    distribute: str = "none"
    init: str = ""

    def __post_init__(self):
        if not isinstance(self.init, str):
            raise ConfigError(f"training.init must be a path to a model. Received: init={self.init!r}")
        object.__setattr__(self, "speeds", speed_factors("training.speeds", self.speeds))
        for name in (
            "epochs",
            "batch_size",
            "patience",
            "seed",
            "freq_mask_width",
            "time_mask_width",
            "members",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"training.{name} must be an integer. Received: {name}={value!r}")
        for name in ("learning_rate", "weight_decay", "crop_seconds", "label_smoothing", "mixup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"training.{name} must be a number. Received: {name}={value!r}")
        if not isinstance(self.spec_augment, bool):
            raise ConfigError(
                f"training.spec_augment must be true or false. Received: spec_augment={self.spec_augment!r}"
            )
        if self.freq_mask_width < 0 or self.time_mask_width < 0:
            raise ConfigError(
                "training.freq_mask_width and time_mask_width must be >= 0. Received: "
                f"freq_mask_width={self.freq_mask_width}, time_mask_width={self.time_mask_width}"
            )
        if self.seed < 0:
            raise ConfigError(f"training.seed must be >= 0. Received: seed={self.seed}")
        if self.weight_decay < 0:
            raise ConfigError(
                f"training.weight_decay must be >= 0. Received: weight_decay={self.weight_decay}"
            )
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0:
            raise ConfigError(
                f"epochs and batch_size must be >= 1 and patience >= 0. Received: epochs={self.epochs}, "
                f"batch_size={self.batch_size}, patience={self.patience}"
            )
        if not self.learning_rate > 0 or not self.crop_seconds > 0:
            raise ConfigError(
                f"learning_rate and crop_seconds must be > 0. Received: learning_rate={self.learning_rate}, "
                f"crop_seconds={self.crop_seconds}"
            )
        if self.class_weight not in ("balanced", "none"):
            raise ConfigError(f"class_weight must be 'balanced' or 'none'. Received: {self.class_weight!r}")
        if self.mixup < 0:
            raise ConfigError(f"training.mixup must be >= 0. Received: mixup={self.mixup}")
        if self.keep not in ("best", "last"):
            raise ConfigError(f"training.keep must be 'best' or 'last'. Received: keep={self.keep!r}")
        if not 1 <= self.members <= 16:
            raise ConfigError(f"training.members must be from 1 to 16. Received: members={self.members}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1). Received: {self.label_smoothing}")
        if self.distribute not in ("none", "mirrored", "multi_worker"):
            raise ConfigError(
                "training.distribute must be one of 'none', 'mirrored', 'multi_worker'. "
                f"Received: distribute={self.distribute!r}"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["speeds"] = list(self.speeds)
        if d["distribute"] == "none":  # (so that runs from before the setting existed resume)
            del d["distribute"]
        return d


def _dataclass_from(cls, section: str, values: dict):
    known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {[f'{section}.{k}' for k in unknown]}; expected some of {sorted(known)}"
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # a value of the wrong type that the checks missed
        raise ConfigError(f"bad [{section}] settings: {exc}") from None


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as TOML literals, else strings)."""
    recipe = copy.deepcopy(recipe)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, e.g. model.head=average. Received: {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in SECTIONS or len(parts) < 2:
            raise ConfigError(
                f"--set key must start with one of {SECTIONS}, e.g. training.epochs=10. Received: {key!r}"
            )
        node = recipe
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(value.strip())
    return recipe


def _corpus_section(corpus: dict, path: Path) -> tuple[dict, object]:
    """The resolved ``[corpus]`` section and the module of the corpus whose protocol is the
    default (that of the first tested corpus where several are listed).

    One corpus: ``name``, ``options`` (passed to its loader) and ``speakers`` (keep only these
    speakers; all when empty). Several (:mod:`ser.training.sources`): ``corpora`` (loader
    names), ``options`` (a table per corpus), ``train_only`` (corpora only added to training
    sets) and ``speakers`` (named ``"<corpus>:<speaker>"``); their ``name`` is the
    loaders' names joined by ``+``.
    """
    allowed = (
        ("corpora", "options", "speakers", "train_only")
        if "corpora" in corpus
        else ("name", "options", "speakers")
    )
    unknown = sorted(set(corpus) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {[f'corpus.{k}' for k in unknown]}; expected some of {list(allowed)}"
        )
    options = corpus.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(
            f"corpus.options must be a table, e.g. options = {{ merge_calm = true }}. Received: options={options!r}"
        )
    speakers = corpus.get("speakers", [])
    if not isinstance(speakers, list) or not all(isinstance(s, (str, int)) for s in speakers):
        raise ConfigError(
            'corpus.speakers must be a list of speaker ids, e.g. ["Actor_01", "Actor_02"]. '
            f"Received: speakers={speakers!r}"
        )
    kept = {"speakers": [str(s) for s in speakers]} if speakers else {}
    if "corpora" not in corpus:
        if "name" not in corpus:
            raise ConfigError(f'{path}: [corpus] needs a name, e.g. name = "ravdess"')
        if not isinstance(corpus["name"], str):
            raise ConfigError(f"corpus.name must be a string. Received: name={corpus['name']!r}")
        return {"name": corpus["name"], "options": dict(options)} | kept, get_corpus(corpus["name"])
    names = corpus["corpora"]
    if not isinstance(names, list) or len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            f'corpus.corpora must list two or more different corpora, e.g. ["ravdess", "tess"]. Received: {names!r}'
        )
    modules = [get_corpus(n) for n in names]
    extra = corpus.get("train_only", [])
    if not isinstance(extra, list) or not set(extra) < set(names):
        raise ConfigError(
            f"corpus.train_only must list some (not all) of corpus.corpora {names}. Received: train_only={extra!r}"
        )
    if not set(options) <= set(names) or not all(isinstance(v, dict) for v in options.values()):
        raise ConfigError(
            f"corpus.options of several corpora is a table per corpus, e.g. options.ravdess = {{ merge_calm = true }}; "
            f"expected some of {names}. Received: options={options!r}"
        )
    sources = [{"name": n, "options": dict(options.get(n, {}))} for n in names]
    resolved = {"name": "+".join(names), "corpora": sources, "train_only": list(extra), "options": {}} | kept
    tested = next(m for n, m in zip(names, modules, strict=True) if n not in extra)
    return resolved, tested


def find_recipe(name_or_path: str) -> Path:
    """The ``recipe.toml`` of a recipe name (under ``recipes/``) or a recipe folder/file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if (p / "recipe.toml").is_file():
        return p / "recipe.toml"
    candidate = RECIPES_DIR / str(name_or_path) / "recipe.toml"
    if candidate.is_file():
        return candidate
    available = (
        sorted(d.name for d in RECIPES_DIR.iterdir() if (d / "recipe.toml").is_file())
        if RECIPES_DIR.is_dir()
        else []
    )
    raise ConfigError(f"recipe {name_or_path!r} not found; expected a recipe folder or one of {available}")


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> dict:
    """Read, override, validate and resolve a recipe.

    Returns
    -------
    dict
        ``{"name", "path", "corpus": {"name", "options"[, "speakers"]} (several corpora: also
        "corpora", "train_only"; see :func:`_corpus_section`), "protocol": {...},
        "frontend": FrontendConfig, "features": {"normalization"}, "model": ModelConfig,
        "training": TrainingConfig}``.
    """

    path = find_recipe(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid recipe file ({exc})") from None
    raw = apply_overrides(raw, overrides or [])
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; expected some of {list(SECTIONS)}")
    for section in SECTIONS:
        if not isinstance(raw.get(section, {}), dict):
            raise ConfigError(
                f"{path}: [{section}] must be a table of settings. Received: {section}={raw[section]!r}"
            )
    corpus, module = _corpus_section(dict(raw.get("corpus", {})), path)
    protocol = check_protocol(
        {
            **getattr(module, "PROTOCOL", {"kind": "group_kfold", "group": "speaker", "k": 5}),
            **raw.get("protocol", {}),
        }
    )
    features = {"normalization": "global", **raw.get("features", {})}
    if features["normalization"] not in NORMALIZATIONS:
        raise ConfigError(
            f"features.normalization must be one of {NORMALIZATIONS}. Received: {features['normalization']!r}"
        )
    unknown = sorted(set(features) - {"normalization"})
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {[f'features.{k}' for k in unknown]}; expected ['normalization']"
        )
    model = dict(raw.get("model", {}))
    return {
        "name": path.parent.name,
        "path": str(path),
        "corpus": corpus,
        "protocol": protocol,
        "frontend": _dataclass_from(FrontendConfig, "frontend", raw.get("frontend", {})),
        "features": features,
        "model": _dataclass_from(ModelConfig, "model", model),
        "training": _dataclass_from(TrainingConfig, "training", raw.get("training", {})),
    }


def recipe_to_dict(recipe: dict) -> dict:
    """A JSON-serialisable copy of a resolved recipe (for run.json and results.json)."""
    out = {}
    for key, value in recipe.items():
        if hasattr(value, "to_dict"):
            out[key] = value.to_dict()
        elif dataclasses.is_dataclass(value):
            out[key] = dataclasses.asdict(value)
        else:
            out[key] = copy.deepcopy(value)
    return out
