"""Training: a recipe's speaker-independent folds, their report and a final model; resumable.

=================  ==============================================================
``sources``        several corpora in one run: roots, one manifest, folds, per-corpus scores
``prepare``        load and check the corpus; features (cached), labels, folds
``init``           fine-tuning: weights from a trained model; what a model was trained on
``fit``            train one model (``model.fit`` on crops, with callbacks)
``fusion_weights`` the CNN's fusion weights with the functionals head
``fold``           train and evaluate one fold; its fold folder
``run_dir``        the run folder: run.json, refusals, finished folds
``report``         results.json, results.md, confusion.png
``final``          the final model, model.keras
``workers``        folds trained in worker processes (``--jobs``)
``run``            ``run_recipe``: the orchestration
=================  ==============================================================
"""

from ser.training.fit import Trainer, train_model
from ser.training.fold import FoldResult, train_fold
from ser.training.prepare import Prepared, check_corpus, load_manifest, prepare_corpus
from ser.training.run import run_recipe
from ser.training.run_dir import has_results

__all__ = [
    "FoldResult",
    "Prepared",
    "Trainer",
    "check_corpus",
    "has_results",
    "load_manifest",
    "prepare_corpus",
    "run_recipe",
    "train_fold",
    "train_model",
]
