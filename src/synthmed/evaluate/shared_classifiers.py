"""The classifiers condition fidelity and explanations use: the usefulness run's own, else fitted here once."""

from __future__ import annotations

import logging
from pathlib import Path

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate import tstr
from synthmed.evaluate.tstr_outputs import load_classifier
from synthmed.evaluate.tstr_verdict import classifier_description, weights_description

log = logging.getLogger(__name__)


class SharedClassifiers:
    """Real-trained (TRTR) and synthetic-trained (TSTR) classifiers of the first arch and seed, each obtained once.

    When the usefulness section ran with the same TSTRConfig and saved its classifiers, the matching
    ones are loaded from EVAL_DIR/usefulness/classifiers/ (the identical model, not a second fit);
    otherwise each is fitted here on first use and kept.
    """

    def __init__(
        self,
        *,
        config: tstr.TSTRConfig,
        real_train: ImageArrays,
        real_val: ImageArrays | None,
        synthetic: ImageArrays,
        usefulness: dict | None,
        eval_dir: Path,
    ):
        self.config, self.eval_dir = config, Path(eval_dir)
        self.arch, self.seed = config.archs[0], config.seeds[0]
        self.train_sets = {"real": real_train, "synthetic": synthetic}
        self.real_val, self.usefulness = real_val, usefulness or {}
        self._models: dict = {}
        self.sources: dict[str, str] = {}

    def _saved(self, train_set: str) -> Path | None:
        if self.usefulness.get("config") != self.config.model_dump(mode="json"):
            return None
        for entry in self.usefulness.get("classifiers") or []:
            if (entry.get("arch"), entry.get("train_set"), entry.get("seed")) == (self.arch, train_set, self.seed):
                path = self.eval_dir / entry["weights"]
                return path if path.is_file() else None
        return None

    def get(self, train_set: str):
        """The classifier trained on `train_set` ("real" or "synthetic")."""
        if train_set not in self._models:
            saved = self._saved(train_set)
            if saved is not None:
                self._models[train_set] = load_classifier(saved)
                self.sources[train_set] = f"the usefulness run's classifier ({saved.relative_to(self.eval_dir)})"
                log.info("reusing the usefulness %s-trained %s classifier from %s", train_set, self.arch, saved)
            else:
                self._models[train_set] = tstr.fit_classifier(
                    self.train_sets[train_set],
                    self.real_val,
                    arch=self.arch,
                    config=self.config,
                    seed=self.seed,
                    in_channels=int(self.train_sets["real"].pixels.shape[1]),
                )
                self.sources[train_set] = "fitted for this section (usefulness did not run with the same settings)"
        return self._models[train_set]

    def rests_on(self, train_sets: list[str], *, scored: dict[str, int], note: str = "") -> dict:
        """What a verdict on these classifiers rests on: structured fields and one sentence ("text")."""
        described = ", and the same arch ".join(self.describe(t) for t in train_sets)
        text = f"{described}; scored on " + " and ".join(f"{n:,} {name} images" for name, n in scored.items())
        return {
            "classifiers": [
                {
                    "arch": self.arch,
                    "weights": weights_description(self.arch, self.config.weights_dir),
                    "image_size_px": self.config.image_size_px,
                    "seed": self.seed,
                    "trained_on": t,
                    "n_train_images": tstr.images_used(len(self.train_sets[t]), self.config),
                }
                for t in train_sets
            ],
            "n_scored_images": dict(scored),
            "text": text + (f"; {note}." if note else "."),
        }

    def describe(self, train_set: str) -> str:
        """'small_cnn (from scratch, 64 px, seed 0) trained on 1,200 real images'."""
        text = classifier_description(
            self.arch, weights_dir=self.config.weights_dir, image_size_px=self.config.image_size_px, seeds=[self.seed]
        )
        n_images = tstr.images_used(len(self.train_sets[train_set]), self.config)
        return f"{text} trained on {n_images:,} {train_set} images"
