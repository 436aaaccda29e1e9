"""The shipped sign classifier on the held-out real crops, and safe weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception.sign_training import holdout_split, predict
from perception.signs import SignClassifier, SignNet, load_sign_folder, speed_limit_kph

MIN_HELDOUT_ACCURACY = 0.95


@pytest.mark.slow
def test_shipped_classifier_on_held_out_real_crops(shared_dir):
    data = load_sign_folder(shared_dir / "data/signs")
    split = holdout_split(data.labels, 0.2)
    classifier = SignClassifier()

    predicted = predict(classifier.model, data.images[split.test])

    assert classifier.class_names[: len(data.class_names)] == data.class_names
    accuracy = float(np.mean(predicted == data.labels[split.test]))
    assert accuracy >= MIN_HELDOUT_ACCURACY


def test_holdout_takes_the_last_files_of_every_class():
    labels = np.array([0] * 10 + [1] * 5)
    split = holdout_split(labels, 0.2)
    assert split.test.tolist() == [8, 9, 14]
    assert len(split.train) + len(split.test) == len(labels)


def test_speed_limit_classes():
    assert speed_limit_kph("speed limit 40") == 40
    assert speed_limit_kph("minimum speed 30 (blue)") is None


def test_classify_returns_named_predictions():
    classifier = SignClassifier()
    crops = [np.zeros((20, 24, 3), np.uint8), np.full((48, 48, 3), 200, np.uint8)]
    predictions = classifier.classify(crops)
    assert len(predictions) == 2
    assert all(p.class_name == classifier.class_names[p.class_index] for p in predictions)
    assert all(0 <= p.probability <= 1 for p in predictions)


def test_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    path = tmp_path / "sign_classifier.pt"
    torch.save(SignNet(3), path)  # a pickled module, not a state_dict
    (tmp_path / "sign_classifier.json").write_text('{"class_names": ["a", "b", "c"]}')
    with pytest.raises(ValueError, match="sign_classifier.pt"):
        SignClassifier(path)
