"""``training.distribute``: one model's training over several devices (:mod:`ser.training.distribute`)."""

import json
import subprocess
import sys

import pytest

# Runs in a fresh process: the 2 logical CPU devices must exist before TensorFlow initialises.
SCRIPT = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ser.recipe import load_recipe
from ser.training.fit import Trainer

labels = ["a", "b", "c", "d"]
base = ["model.widths=[4, 8, 8, 8, 8]", "model.dropout=0.0", "training.learning_rate=0.003"]
one = load_recipe("synthetic", [*base, "training.batch_size=8", "training.learning_rate=0.006"])
two = load_recipe("synthetic", [*base, "training.batch_size=4", "training.distribute=mirrored"])
rng = np.random.default_rng(0)
batches = [
    (rng.standard_normal((8, 96, 64)).astype(np.float32), np.ones((8, 96), np.float32),
     np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)], np.ones(8, np.float32))
    for _ in range(4)
]
out = {}
for name, recipe, strategy in (
    ("one", one, None),
    ("two", two, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
):
    trainer = Trainer(labels, recipe, strategy=strategy)
    model = trainer.start(np.zeros(64, np.float32), np.ones(64, np.float32), steps_per_epoch=2, epochs=2, info={})
    losses = [float(trainer.step(*b)["loss"]) for b in batches]
    out[name] = {"replicas": trainer.replicas, "losses": losses,
                 "weights": [w.tolist() for w in model.get_weights()]}
print(json.dumps(out))
"""


def test_mirrored_over_two_devices_matches_one_device_with_the_global_batch():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    one, two = got["one"], got["two"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    # batch 4 per replica x 2 replicas at learning rate 0.003 x 2 == batch 8 at 0.006 on one device
    # (measured: weights within 8.5e-7, losses within 3e-7 after 4 steps)
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)
    import numpy as np

    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5)


def test_an_unknown_distribution_is_refused():
    from ser.errors import ConfigError
    from ser.recipe import load_recipe

    with pytest.raises(
        ConfigError, match=r"training.distribute must be one of .* Received: distribute='tpu'"
    ):
        load_recipe("synthetic", ["training.distribute=tpu"])
