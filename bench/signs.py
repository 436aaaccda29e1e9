"""Sign classifier benchmark: held-out accuracy of the shipped weights on the real crops
(the last 20 % of each class's files), per class, and the classification speed; with
--rendered, also on the sign plates of simulated frames (a make-dataset directory of
episodes the classifier was not trained on; all its splits are used).

    python -m bench.signs [--data ../shared/data/signs] [--rendered runs/data/sim_signs_test]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/bus.py would shadow the bus package: import from the repository root instead.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
SHARED = Path(os.environ.get("DRIVESTACK_SHARED", REPO.parent / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=SHARED / "data/signs")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--rendered", type=Path, help="make-dataset directory of held-out episodes")
    args = parser.parse_args()

    import numpy as np

    from perception.sign_training import holdout_split, predict
    from perception.signs import SignClassifier, load_sign_folder

    rendered = None
    if args.rendered is not None:
        from perception.rendered_signs import load_rendered_signs

        rendered = load_rendered_signs(args.rendered)  # a bad folder fails before the benchmark
    data = load_sign_folder(args.data)
    split = holdout_split(data.labels, args.holdout)
    classifier = SignClassifier()
    started = time.perf_counter()
    predicted = predict(classifier.model, data.images[split.test])
    elapsed_ms = (time.perf_counter() - started) * 1000
    truth = data.labels[split.test]

    print(f"{'class':>36} {'n':>4} {'accuracy':>8}")
    for index, name in enumerate(data.class_names):
        mask = truth == index
        print(f"{name:>36} {int(mask.sum()):>4} {float(np.mean(predicted[mask] == index)):8.3f}")
    print(
        f"held-out accuracy {float(np.mean(predicted == truth)):.4f} on {len(truth)} crops; "
        f"{elapsed_ms / len(truth):.2f} ms per crop (batched)"
    )
    if rendered is not None:
        _rendered_table(classifier, rendered, args.rendered)


def _rendered_table(classifier, crops, root: Path) -> None:
    import numpy as np

    from perception.sign_training import predict

    index = {name: i for i, name in enumerate(classifier.class_names)}
    index[""] = 0
    known = [name in index for name in crops.names]
    truth = np.array([index.get(name, -1) for name in crops.names])
    predicted = predict(classifier.model, crops.images)
    print(f"\nrendered sign plates of {root} ({len(truth)} crops)")
    print(f"{'class':>36} {'n':>4} {'accuracy':>8}")
    for name in sorted(set(crops.names)):
        mask = np.array([n == name for n in crops.names])
        shown = name or classifier.class_names[0]
        accuracy = (
            float(np.mean(predicted[mask] == truth[mask])) if index.get(name) is not None else 0.0
        )
        print(f"{shown:>36} {int(mask.sum()):>4} {accuracy:8.3f}")
    print(
        f"rendered accuracy {float(np.mean(predicted == truth)):.4f} "
        f"({sum(not k for k in known)} crops of classes the classifier lacks)"
    )


if __name__ == "__main__":
    main()
