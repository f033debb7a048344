"""The final model: trained on all speakers once every fold is done, saved as ``model.keras``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ser import interrupts
from ser.fusion import FunctionalsHead
from ser.io import atomic_path, log
from ser.model import build_model, ensemble_model
from ser.protocol import member_splits
from ser.training.fit import train_split
from ser.training.fusion_weights import ensemble_weights, member_fusion_weights


def ensemble_of(trained, labels, recipe):
    """An :func:`ser.model.ensemble_model` of members given as ``(weights, info)`` pairs."""
    frontend = recipe["frontend"]
    members = []
    for j, (weights, member_info) in enumerate(trained, start=1):
        member = build_model(
            labels,
            frontend.n_mels,
            recipe["model"],
            frontend=frontend.to_dict(),
            info=member_info,
            name=f"member_{j}",
        )
        member.set_weights(weights)
        members.append(member)
    info = {k: v for k, v in trained[0][1].items() if k != "seed"}
    info |= {"members": len(members), "member_seeds": [m[1].get("seed") for m in trained]}
    return ensemble_model(members, labels, frontend=frontend.to_dict(), info=info)


def train_final(data, recipe: dict, out: Path, *, info: dict, trainer) -> None:
    """Train the final model on all speakers of the prepared corpus ``data`` and write
    ``out/model.keras`` (curves in ``out/tensorboard/final``).

    Each member holds out validation speakers for its best epoch and fusion weights, as in
    the folds; ``info`` (:func:`ser.training.fold.model_info`, with the cross-validation
    scores) goes into its metadata. With ``model.functionals``, the functionals head is fitted
    on every file and stored in the metadata with the members' mean fusion weights.
    """
    tcfg = recipe["training"]
    with interrupts.deferred():  # Ctrl-C waits for a safe point, as in the folds
        t0 = time.time()
        shutil.rmtree(out / "tensorboard" / "final", ignore_errors=True)
        trained, member_weights = [], []
        for split in member_splits(data.manifest, None, recipe["protocol"], tcfg):
            tag = f" member {split.member}/{tcfg.members}" if tcfg.members > 1 else ""
            log(
                f"final model{tag}: all speakers ({len(split.train)} train, {len(split.validation)} validation files)"
            )
            model, _ = train_split(
                split,
                data,
                data.labels,
                recipe,
                info=info,
                board=out / "tensorboard" / "final",
                prefix="final ",
                trainer=trainer,
            )
            if data.functionals is not None:
                member_weights.append(member_fusion_weights(model, split, data, recipe)[0])
            trained.append((model.get_weights(), dict(model.get_layer("ser_metadata").info)))
        if len(trained) > 1:
            model = ensemble_of(trained, data.labels, recipe)
        if data.functionals is not None:
            head = FunctionalsHead.fit(data.functionals, data.y, data.speakers, len(data.labels))
            head.weight, head.speaker_weight = ensemble_weights(member_weights)
            log(
                f"final model: fusion weights of the CNN chosen on the validation speakers: "
                f"{head.weight:.2f} for a single file, {head.speaker_weight:.2f} speaker-adapted"
            )
            model.get_layer("ser_metadata").info["functionals"] = head.to_dict()
        interrupts.check()  # a Ctrl-C during the head's fit: stop before the model is written
        with atomic_path(out / "model.keras") as tmp:
            model.save(tmp)
        log(f"final model written to {out / 'model.keras'} ({time.time() - t0:.0f}s)")
