r"""Sample quality on the book's data sets, each figure next to what real data scores.

Two moons (:func:`ddpm_lib.data.two_moons`), whose geometry is known:

* :func:`moons_arc_distance` and :func:`off_arc_share`: each point's distance to the two
  noise-free arcs, and the share of points far from both (mass between the moons).

Digits (:func:`ddpm_lib.data.digits`); :func:`digit_quality` computes every figure at once:

* :func:`digit_classifier`, :func:`confident_fraction`, :func:`class_histogram`: a
  classifier trained on the *train* split only, the share of images it labels with
  confidence, and the share of each predicted class.
* :func:`classifier_features`: the classifier's hidden features, in which
  :func:`ddpm_lib.metrics.frechet_distance` is measured.
* the copying check, :func:`ddpm_lib.metrics.nearest_distances` to the training images
  against the same for held-out test images.

Every function refuses NaN or infinite input with a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ddpm_lib._validate import check_int, check_positive_int
from ddpm_lib.metrics import _as_points, _finite, frechet_distance, nearest_distances

__all__ = [
    "moons_arc_distance",
    "off_arc_share",
    "digit_classifier",
    "confident_fraction",
    "class_histogram",
    "classifier_features",
    "DIGIT_GOALS",
    "DigitQuality",
    "digit_quality",
]


# ddpm_lib.data.two_moons maps the moons' own coordinates p to (p - SHIFT) / SCALE.
_MOONS_SHIFT = np.array([0.5, 0.25])
_MOONS_SCALE = 0.87


def _arc_distance(p: np.ndarray, centre, lower: bool) -> np.ndarray:
    """Distance from points ``p`` to the unit half circle around ``centre`` (upper or lower half)."""
    q = p - np.asarray(centre)
    on_side = q[:, 1] <= 0 if lower else q[:, 1] >= 0
    to_circle = np.abs(np.linalg.norm(q, axis=1) - 1.0)
    ends = np.array([[1.0, 0.0], [-1.0, 0.0]])
    to_ends = np.min(np.linalg.norm(q[:, None, :] - ends[None], axis=-1), axis=1)
    return np.where(on_side, to_circle, to_ends)


def moons_arc_distance(points) -> np.ndarray:
    r"""Each point's distance to the nearer of the two arcs of :func:`ddpm_lib.data.two_moons`.

    The arcs are the noise-free moons: the upper half of the unit circle around (0, 0) and
    the lower half of the unit circle around (1, 1/2), in the moons' own units (those of the
    ``noise`` argument of :func:`~ddpm_lib.data.two_moons`). Points are mapped back to those
    units first, so the result is directly comparable with ``noise``.

    Args:
      points: ``(n, 2)`` points on the scale :func:`~ddpm_lib.data.two_moons` returns.

    Returns:
      A float64 NumPy array ``(n,)``.

    Raises:
      ValueError: unless ``points`` is a finite ``(n, 2)`` array.
    """
    p = _as_points("points", points)
    if p.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2); got {p.shape}")
    p = p * _MOONS_SCALE + _MOONS_SHIFT
    return np.minimum(_arc_distance(p, (0.0, 0.0), lower=False), _arc_distance(p, (1.0, 0.5), lower=True))


def off_arc_share(points, *, noise: float = 0.05, k: float = 3.0) -> float:
    r"""The share of points farther than ``k * noise`` from both moon arcs (:func:`moons_arc_distance`).

    For real moons with Gaussian noise of standard deviation ``noise`` the distance to the
    arc is about :math:`|z|\,\sigma` with :math:`z` standard normal, so the share is about
    :math:`P(|z| > k)` (0.27% for ``k = 3``, a little more near the arcs' ends). A model that
    puts mass between the moons exceeds it. Compare with the same share of real data.

    Raises:
      ValueError: for bad points, or a ``noise`` or ``k`` that is not a finite number > 0.
    """
    for name, v in (("noise", noise), ("k", k)):
        if isinstance(v, bool) or not (isinstance(v, (int, float, np.number)) and np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
    return float(np.mean(moons_arc_distance(points) > k * noise))


def _as_digits(name: str, images, min_rows: int = 1) -> np.ndarray:
    a = _finite(name, images)
    if a.ndim != 3 or a.shape[1:] != (8, 8) or a.shape[0] < min_rows:
        raise ValueError(f"{name} must have shape (n, 8, 8) with n >= {min_rows}; got {a.shape}")
    return a


def digit_classifier(images, labels, *, kind: str = "mlp", seed: int = 0):
    """A scikit-learn classifier of 8x8 digit images; train it on the *train* split only.

    Args:
      images: ``(n, 8, 8)`` images in [-1, 1] (as :func:`ddpm_lib.data.digits` returns them).
      labels: ``(n,)`` integer labels 0..9.
      kind: ``"mlp"`` (one hidden layer of 128 ReLU units, ``MLPClassifier``; its hidden
        layer gives :func:`classifier_features`) or ``"logistic"`` (``LogisticRegression``).
      seed: the seed of the classifier's initialization.

    Returns:
      A fitted scikit-learn classifier.

    Raises:
      ValueError: for non-finite images, lengths that differ, or an unknown ``kind``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x = _as_digits("images", images).reshape(len(images), -1)
    y = np.asarray(labels)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"images and labels must have the same length; got {x.shape[0]} and {y.shape[0]}")
    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, random_state=seed)
    elif kind == "logistic":
        clf = LogisticRegression(max_iter=2000, random_state=seed)
    else:
        raise ValueError(f"kind must be 'mlp' or 'logistic'; got {kind!r}")
    # One BLAS thread: these matrices are small, and on a busy machine extra threads make the
    # fit many times slower. It also fixes the order of the sums, whatever the machine.
    with threadpool_limits(1):
        return clf.fit(x, y)


def _flat_clipped(name: str, images) -> np.ndarray:
    return np.clip(_as_digits(name, images), -1.0, 1.0).reshape(len(images), -1)


def confident_fraction(classifier, images, threshold: float = 0.9):
    """The share of ``images`` that ``classifier`` labels with probability >= ``threshold``.

    Images are clipped to [-1, 1] first (generated images may overshoot the data range).

    Returns:
      ``(fraction, predicted_labels)``: a Python float and an ``(n,)`` NumPy array.

    Raises:
      ValueError: if ``threshold`` is outside [0, 1] or the images are not finite ``(n, 8, 8)``.
    """
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float, np.number)) and 0 <= threshold <= 1):
        raise ValueError(f"threshold must lie in [0, 1]; got {threshold!r}")
    proba = classifier.predict_proba(_flat_clipped("images", images))
    return float(np.mean(proba.max(axis=1) >= threshold)), classifier.classes_[proba.argmax(axis=1)]


def class_histogram(labels, num_classes: int = 10) -> np.ndarray:
    """The share of each class ``0..num_classes-1`` among integer ``labels``: a float64 array summing to 1.

    Raises:
      ValueError: for an empty array, or labels that are not integers in ``0..num_classes-1``.
    """
    num_classes = check_positive_int("num_classes", num_classes)
    a = np.asarray(labels)
    if a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= num_classes:
        raise ValueError(f"labels must be a non-empty 1-D array of integers in 0..{num_classes - 1}; got {a!r:.80}")
    return np.bincount(a, minlength=num_classes) / a.size


def classifier_features(classifier, images) -> np.ndarray:
    r"""The hidden-layer activations of an ``MLPClassifier`` (:func:`digit_classifier`), ``(n, 128)``.

    :math:`\phi(x) = \mathrm{ReLU}(W_1^\top x + b_1)` on the flattened, clipped image: the
    features on which the classifier's last layer decides, as Inception features serve FID.

    Raises:
      ValueError: if ``classifier`` is not a fitted one-hidden-layer ReLU ``MLPClassifier``,
        or the images are not finite ``(n, 8, 8)``.
    """
    coefs = getattr(classifier, "coefs_", None)
    if coefs is None or len(coefs) != 2 or getattr(classifier, "activation", None) != "relu":
        raise ValueError("classifier must be a fitted MLPClassifier with one ReLU hidden layer "
                         "(metrics.digit_classifier(kind='mlp'))")
    x = _flat_clipped("images", images)
    return np.maximum(x @ coefs[0] + classifier.intercepts_[0], 0.0)


DIGIT_GOALS = {"confident": 0.92, "frechet_ratio": 1.2, "copying_ratio": 0.75, "min_class_share": 0.04}
"""Goals of the book's digits model on 1000 samples.

Confident share at least 0.92, Frechet ratio at most 1.2, copying ratio at least 0.75, and
every class at least 0.04 of the samples.
"""


@dataclasses.dataclass(frozen=True)
class DigitQuality:
    """What :func:`digit_quality` measures, each figure next to its real-data counterpart.

    Attributes:
      num_samples: the number of generated images.
      confident: the share recognised with confidence >= 0.9.
      real_confident: the same for the held-out test digits.
      class_shares: the share of each predicted class 0..9.
      frechet: the Fréchet distance of samples to the training digits (in classifier
        features), averaged over subsets of the test split's size.
      frechet_floor: the same for the held-out test digits.
      copying_median: the median distance of a sample to its nearest training image.
      copying_test_median: the same for the held-out test digits.
    """

    num_samples: int
    confident: float
    real_confident: float
    class_shares: np.ndarray
    frechet: float
    frechet_floor: float
    copying_median: float
    copying_test_median: float

    @property
    def frechet_ratio(self) -> float:
        return self.frechet / self.frechet_floor

    @property
    def copying_ratio(self) -> float:
        return self.copying_median / self.copying_test_median

    def goals(self) -> dict[str, bool]:
        """Each goal of :data:`DIGIT_GOALS`, met or not."""
        return {"confident": self.confident >= DIGIT_GOALS["confident"],
                "frechet_ratio": self.frechet_ratio <= DIGIT_GOALS["frechet_ratio"],
                "copying_ratio": self.copying_ratio >= DIGIT_GOALS["copying_ratio"],
                "min_class_share": float(self.class_shares.min()) >= DIGIT_GOALS["min_class_share"]}

    def summary(self) -> str:
        """A few lines: every figure, its real-data counterpart, its goal, met or not."""
        met = self.goals()
        return "\n".join([
            f"confident (p >= 0.9): {self.confident:.3f} (real test digits {self.real_confident:.3f}; "
            f"goal >= {DIGIT_GOALS['confident']}): {met['confident']}",
            f"Frechet distance: {self.frechet:.1f}, floor {self.frechet_floor:.1f}, ratio "
            f"{self.frechet_ratio:.2f} (goal <= {DIGIT_GOALS['frechet_ratio']}): {met['frechet_ratio']}",
            f"copying: median nearest-train distance {self.copying_median:.2f}, test digits "
            f"{self.copying_test_median:.2f}, ratio {self.copying_ratio:.2f} "
            f"(goal >= {DIGIT_GOALS['copying_ratio']}): {met['copying_ratio']}",
            f"smallest class share {self.class_shares.min():.3f} (goal >= {DIGIT_GOALS['min_class_share']}): "
            f"{met['min_class_share']}",
        ])


@functools.lru_cache(maxsize=4)
def _digit_reference(seed: int):
    """The classifier and the test split's figures, computed once per process (a few seconds)."""
    from ddpm_lib import data

    train_x, train_y = (np.asarray(a) for a in data.digits("train"))
    test_x, _ = (np.asarray(a) for a in data.digits("test"))
    clf = digit_classifier(train_x, train_y, seed=seed)
    return dict(clf=clf, train_x=train_x, test_x=test_x,
                train_f=classifier_features(clf, train_x), test_f=classifier_features(clf, test_x),
                real_confident=confident_fraction(clf, test_x)[0],
                test_nearest=float(np.median(nearest_distances(test_x, train_x))))


def _mean_frechet(features: np.ndarray, reference: np.ndarray, size: int, num: int, rng) -> float:
    if size == len(features):
        return frechet_distance(features, reference)
    return float(np.mean([frechet_distance(features[rng.choice(len(features), size, replace=False)], reference)
                          for _ in range(num)]))


def digit_quality(samples, *, seed: int = 0, num_subsets: int = 10) -> DigitQuality:
    r"""Every digit figure of the book for generated ``samples``, each with its real-data counterpart.

    The reference is :func:`ddpm_lib.data.digits` with its default split: a classifier
    (:func:`digit_classifier`, seed ``seed``) trained on the train split only, and the
    held-out test split (359 images) standing in for a perfect sampler.

    * **Fréchet distance** (:func:`~ddpm_lib.metrics.frechet_distance` of :func:`classifier_features`) to the
      training digits. Samples and test digits enter at the same size
      :math:`m = \min(n, 359)`, averaged over ``num_subsets`` random subsets of that size
      where there are more; the test digits' value is the floor.
    * **Confident share**, **class histogram**: :func:`confident_fraction`, :func:`class_histogram`.
    * **Copying**: the median of :func:`~ddpm_lib.metrics.nearest_distances` to the training digits, for the
      samples and for the test digits.

    Args:
      samples: generated images ``(n, 8, 8)`` on the data's scale [-1, 1], ``n >= 2``.
      seed: the classifier's seed, and the seed of the subsets.
      num_subsets: the number of random subsets averaged in the Fréchet distances.

    Returns:
      A :class:`DigitQuality`; its ``goals()`` and ``summary()`` read it against :data:`DIGIT_GOALS`.

    Raises:
      ValueError: unless ``samples`` is a finite ``(n, 8, 8)`` array with ``n >= 2``.
    """
    x = _as_digits("samples", samples, 2)
    num_subsets = check_positive_int("num_subsets", num_subsets)
    seed = check_int("seed", seed, lo=0)
    ref = _digit_reference(seed)
    rng = np.random.default_rng(seed)
    size = min(len(x), len(ref["test_x"]))
    gen_f = classifier_features(ref["clf"], x)
    confident, labels = confident_fraction(ref["clf"], x)
    return DigitQuality(
        num_samples=len(x),
        confident=confident,
        real_confident=ref["real_confident"],
        class_shares=class_histogram(labels.astype(np.int64)),
        frechet=_mean_frechet(gen_f, ref["train_f"], size, num_subsets, rng),
        frechet_floor=_mean_frechet(ref["test_f"], ref["train_f"], size, num_subsets, rng),
        copying_median=float(np.median(nearest_distances(x, ref["train_x"]))),
        copying_test_median=ref["test_nearest"],
    )
