"""ddpm_lib.metrics and ddpm_lib.quality against hand computations, closed forms and independent code.

Each test says which mistake it would catch. Expected values come from float64 NumPy or
SciPy written here, from formulas, or from small examples worked by hand, never from the
function under test.
"""

import jax
import numpy as np
import pytest
import scipy.linalg
from scipy.stats import norm

from ddpm_lib import data, metrics, quality

RNG = np.random.default_rng


# ------------------------------------------------------------------------------------ distances


def _mean_dist(a, b):
    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).mean()


def test_energy_distance_matches_numpy_and_refuses_nan():
    rng = RNG(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(45, 2)) + [0.5, 0.0]
    expected = 2 * _mean_dist(x, y) - _mean_dist(x, x) - _mean_dist(y, y)
    np.testing.assert_allclose(metrics.energy_distance(x, y), expected, rtol=1e-4)
    # Issue 10: one NaN used to give a plausible 2e-07. Now it is refused, naming the argument.
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        metrics.energy_distance(bad, bad)
    with pytest.raises(ValueError, match="y must be finite"):
        metrics.energy_distance(x, np.full((4, 2), np.inf))
    with pytest.raises(ValueError, match="same dimension"):
        metrics.energy_distance(x, rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="shape"):
        metrics.energy_distance(np.ones(5), x)


def test_sliced_wasserstein_closed_forms():
    rng = RNG(1)
    x = rng.normal(size=(50, 2))
    # A shift by v moves every 1-D projection by |<v, u>|; the mean of |cos| over angles is 2/pi.
    np.testing.assert_allclose(metrics.sliced_wasserstein(x, x + [0.3, -0.4], num_projections=1000),
                               2 / np.pi * 0.5, rtol=1e-3)
    a, b = rng.normal(size=(40, 1)), 2 * rng.normal(size=(40, 1))
    np.testing.assert_allclose(metrics.sliced_wasserstein(a, b), np.mean(np.abs(np.sort(a[:, 0]) - np.sort(b[:, 0]))),
                               rtol=1e-6)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="y must be finite"):
        metrics.sliced_wasserstein(x, bad)


# ------------------------------------------------------------------------------------ band


def test_reference_band_quantiles_by_hand():
    # 41 values 0..40: the 2.5% and 97.5% quantiles (linear interpolation) are 0.025*40 = 1
    # and 0.975*40 = 39. Returning min/max instead (0, 40) or the wrong tails would fail.
    band = metrics.reference_band(lambda s: s, range(41), level=0.95)
    assert (band.low, band.high) == pytest.approx((1.0, 39.0), abs=1e-12)
    np.testing.assert_array_equal(band.values, np.arange(41.0))
    assert band.contains(1.5) and band.contains(38.5) and not band.contains(39.5) and not band.contains(0.5)
    with pytest.raises(ValueError, match="level"):
        metrics.reference_band(lambda s: s, range(5), level=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.reference_band(lambda s: s, [1.0])
    with pytest.raises(ValueError, match="finite"):
        metrics.reference_band(lambda s: s, [1.0, np.nan, 2.0])


def test_reference_band_covers_a_known_sampling_distribution():
    # The mean of n = 100 standard normals is N(0, 1/100): its 95% band is +-1.96/10.
    # With K = 400 draws an estimated 2.5% quantile has s.e. sqrt(p(1-p)/K) / density
    # = 0.0078 / (phi(1.96) * 10) = 0.013; the test allows 4 s.e.
    rng = RNG(2)
    band = metrics.reference_band(np.mean, (rng.normal(size=100) for _ in range(400)))
    se = np.sqrt(0.025 * 0.975 / 400) / (norm.pdf(1.96) * 10)
    assert abs(band.low + 0.196) < 4 * se and abs(band.high - 0.196) < 4 * se


# ------------------------------------------------------------------------------------ MMD


def _mmd_loops(x, y, h):
    """Unbiased MMD^2 written out with explicit sums over pairs (a separate implementation)."""
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * h * h))  # noqa: E731
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def test_mmd_by_hand_and_median_bandwidth():
    rng = RNG(3)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2)) + 1.0
    np.testing.assert_allclose(metrics.mmd(x, y, bandwidth=0.7), _mmd_loops(x, y, 0.7), rtol=1e-5, atol=1e-7)
    # The default width is the median distance between the pooled points.
    z = np.concatenate([x, y])
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(12, 1)]
    np.testing.assert_allclose(metrics.mmd(x, y), _mmd_loops(x, y, np.median(d)), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="bandwidth"):
        metrics.mmd(x, y, bandwidth=0.0)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mmd(x[:1], y)


def test_mmd_closed_form_for_two_gaussians():
    # X ~ N(0, s^2 I_d), Y ~ N(mu, s^2 I_d), Gaussian kernel of width h:
    # E k(X, X') = c = (h^2 / (h^2 + 2 s^2))^(d/2), E k(X, Y) = c exp(-|mu|^2 / (2 (h^2 + 2 s^2))),
    # so MMD^2 = 2 c (1 - exp(-|mu|^2 / (2 (h^2 + 2 s^2)))). The estimate is unbiased: the mean
    # of R independent estimates must be within 4 standard errors (their own spread / sqrt(R)).
    d, s, h, mu = 2, 1.0, 1.5, np.array([0.8, 0.0])
    c = (h**2 / (h**2 + 2 * s**2)) ** (d / 2)
    exact = 2 * c * (1 - np.exp(-mu @ mu / (2 * (h**2 + 2 * s**2))))
    rng = RNG(4)
    est = np.array([metrics.mmd(rng.normal(size=(800, d)), rng.normal(size=(800, d)) + mu, bandwidth=h)
                    for _ in range(8)])
    assert abs(est.mean() - exact) < 4 * est.std(ddof=1) / np.sqrt(len(est))
    assert exact > 10 * est.std(ddof=1) / np.sqrt(len(est))  # ... and the test can see a zero MMD


# ------------------------------------------------------------------------------------ precision / recall


def test_precision_recall_by_hand():
    real = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0]])  # k = 1: every real ball has radius 1
    gen = np.array([[0.5, 0], [10, 0]])  # the first is inside the ball around 0, the second in none
    # Generated balls (k = 1): both have radius 9.5, so every real point is covered.
    assert metrics.precision_recall(real, gen, k=1) == (0.5, 1.0)
    # k = 2: real radii are 2 (around 0 and 3) and 1 (around 1 and 2), covering [-2, 5]; (6, 0)
    # and (-2.5, 0) fall outside, (1.5, 0) inside. The generated radii (k = 2) are 8.5, 8.5 and
    # 4.5; the ball of radius 4.5 around 1.5 covers every real point.
    gen = np.array([[6.0, 0], [-2.5, 0], [1.5, 0]])
    assert metrics.precision_recall(real, gen, k=2) == pytest.approx((1 / 3, 1.0))
    with pytest.raises(ValueError, match="k"):
        metrics.precision_recall(real, gen, k=0)
    with pytest.raises(ValueError, match="at least 4"):
        metrics.precision_recall(real[:3], gen, k=3)


def test_precision_sees_off_support_mass():
    # Moons with 20% of the points replaced by uniform clutter: precision drops by about the
    # clutter's share outside the support, recall stays high. A metric blind to the support fails.
    keys = jax.random.split(jax.random.key(0), 3)
    real, clean = data.two_moons(keys[0], 1000), np.asarray(data.two_moons(keys[1], 1000))
    clutter = clean.copy()
    clutter[:200] = RNG(5).uniform(-2.5, 2.5, size=(200, 2))
    p_clean, r_clean = metrics.precision_recall(real, clean)
    p_clutter, r_clutter = metrics.precision_recall(real, clutter)
    assert p_clean > 0.9 and r_clean > 0.9
    assert p_clutter < p_clean - 0.1 and r_clutter > 0.9


# ------------------------------------------------------------------------------------ Frechet, nearest


def test_frechet_distance_against_scipy_and_one_dimension():
    rng = RNG(6)
    a = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 0.3
    ma, mb, ca, cb = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    expected = np.sum((ma - mb) ** 2) + np.trace(ca + cb - 2 * np.real(scipy.linalg.sqrtm(ca @ cb)))
    np.testing.assert_allclose(metrics.frechet_distance(a, b), expected, rtol=1e-8)
    # In 1-D it is (mu_a - mu_b)^2 + (sd_a - sd_b)^2, with n - 1 in the standard deviations.
    u, v = rng.normal(size=(50, 1)), 3 * rng.normal(size=(70, 1)) + 1
    expected = (u.mean() - v.mean()) ** 2 + (u.std(ddof=1) - v.std(ddof=1)) ** 2
    np.testing.assert_allclose(metrics.frechet_distance(u, v), expected, rtol=1e-10)
    assert abs(metrics.frechet_distance(a, a)) < 1e-9
    with pytest.raises(ValueError, match="a must be finite"):
        metrics.frechet_distance(np.full((3, 2), np.nan), b[:, :2])


def test_nearest_distances_by_hand():
    x = np.array([[0.0, 0], [6, 4]])  # (6, 4): 4 from (6, 8), sqrt(45) from (0, 1)
    ref = np.array([[0.0, 1], [6, 8], [10, 10]])
    np.testing.assert_allclose(metrics.nearest_distances(x, ref), [1.0, 4.0], rtol=1e-6)
    # Images are flattened: a 2x2 image at distance 2 (four pixels off by 1).
    np.testing.assert_allclose(metrics.nearest_distances(np.ones((1, 2, 2)), np.zeros((3, 2, 2))), [2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="reference must be finite"):
        metrics.nearest_distances(x, np.full((1, 2), np.nan))


# ------------------------------------------------------------------------------------ moons


def _to_data_scale(p):
    """The moons' own coordinates to the scale of data.two_moons (its documented shift and scale)."""
    return (np.asarray(p, np.float64) - [0.5, 0.25]) / 0.87


def test_moons_arc_distance_by_hand_and_on_noise_free_data():
    # (0, 0) is 1 from the upper arc and |sqrt(1.25) - 1| from the lower circle around (1, 0.5)
    # (its lower half faces it); (-2, -1) is below the upper arc's end (-1, 0): sqrt(2) away.
    p = _to_data_scale([[0.0, 0.0], [-2.0, -1.0], [0.0, 1.0]])
    np.testing.assert_allclose(quality.moons_arc_distance(p), [np.sqrt(1.25) - 1, np.sqrt(2), 0.0], atol=1e-12)
    # Noise-free moons lie on the arcs: this ties the shift and scale to data.two_moons.
    clean = data.two_moons(jax.random.key(0), 2000, noise=0.0)
    assert np.max(quality.moons_arc_distance(clean)) < 1e-5


def test_off_arc_share_by_hand_and_for_real_moons():
    # Points on the top of the upper arc's circle, pushed out radially by 0.1 and 0.2:
    # with noise 0.05 and k = 3 only the second is farther than 0.15.
    p = _to_data_scale([[0.0, 1.1], [0.0, 1.2], [0.0, 1.2], [0.0, 1.0]])
    assert quality.off_arc_share(p, noise=0.05, k=3.0) == 0.5
    # Real moons: the distance to the arc is about |z| sigma, so the share beyond 2 sigma is
    # about P(|z| > 2) = 4.55%; 20,000 points give a s.e. of 0.15%. Near the arcs' ends the
    # distance is two-dimensional and slightly larger: allow 4 s.e. above.
    real = data.two_moons(jax.random.key(1), 20_000)
    share, expected = quality.off_arc_share(real, k=2.0), 2 * norm.sf(2.0)
    se = np.sqrt(expected * (1 - expected) / 20_000)
    assert expected - 4 * se < share < expected + 4 * se + 0.005
    with pytest.raises(ValueError, match="noise"):
        quality.off_arc_share(real, noise=0.0)
    with pytest.raises(ValueError, match="points"):
        quality.moons_arc_distance(np.zeros((3, 3)))


# ------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digit_sets():
    train_x, train_y = (np.asarray(a) for a in data.digits("train"))
    test_x, test_y = (np.asarray(a) for a in data.digits("test"))
    return train_x, train_y, test_x, test_y


def test_class_histogram_by_hand():
    np.testing.assert_array_equal(quality.class_histogram(np.array([0, 2, 2, 3]), num_classes=4), [0.25, 0, 0.5, 0.25])
    with pytest.raises(ValueError, match="labels"):
        quality.class_histogram(np.array([0, 10]))
    with pytest.raises(ValueError, match="labels"):
        quality.class_histogram(np.array([], dtype=int))


def test_classifier_features_are_the_hidden_layer(digit_sets):
    train_x, train_y, test_x, _ = digit_sets
    clf = quality.digit_classifier(train_x, train_y)
    assert np.mean(clf.predict(test_x.reshape(len(test_x), -1)) == digit_sets[3]) > 0.95  # it reads digits
    f = quality.classifier_features(clf, test_x)
    assert f.shape == (len(test_x), 128) and f.min() >= 0.0
    # The softmax of the last layer on these features must be scikit-learn's own predict_proba:
    # features taken after the wrong layer, or without the ReLU, would not reproduce it.
    logits = f @ clf.coefs_[1] + clf.intercepts_[1]
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), clf.predict_proba(test_x.reshape(len(test_x), -1)),
                               rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="classifier"):
        quality.classifier_features(object(), test_x)
    with pytest.raises(ValueError, match="kind"):
        quality.digit_classifier(train_x, train_y, kind="svm")
    with pytest.raises(ValueError, match="images must be finite"):
        quality.confident_fraction(clf, np.full((2, 8, 8), np.nan))


def test_digit_quality_real_digits_sit_on_the_floor_and_a_memoriser_fails(digit_sets):
    train_x, _, test_x, _ = digit_sets
    real = quality.digit_quality(test_x)
    # The test digits themselves, at the test split's full size, ARE the floor: ratios exactly 1.
    assert real.num_samples == len(test_x) == 359
    assert real.frechet == real.frechet_floor and real.copying_median == real.copying_test_median
    assert real.confident == real.real_confident > 0.9
    assert real.goals() == {"confident": True, "frechet_ratio": True, "copying_ratio": True, "min_class_share": True}
    # A memoriser (training images with imperceptible noise) looks perfect to the classifier and
    # to the Frechet distance, and the copying check alone catches it.
    copies = train_x[:1000] + 1e-3 * RNG(7).normal(size=(1000, 8, 8))
    q = quality.digit_quality(copies)
    assert q.confident > 0.95 and q.frechet_ratio < 1.2
    assert q.copying_ratio < 0.01 and not q.goals()["copying_ratio"]
    # A sampler stuck on one blurry mean image fails the rest.
    q = quality.digit_quality(np.repeat(train_x.mean(0, keepdims=True), 50, axis=0))
    assert not q.goals()["frechet_ratio"] and not q.goals()["min_class_share"]
    assert "Frechet distance" in q.summary()
    with pytest.raises(ValueError, match="samples must be finite"):
        quality.digit_quality(np.full((5, 8, 8), np.nan))
    with pytest.raises(ValueError, match="samples must have shape"):
        quality.digit_quality(np.zeros((5, 3, 3)))


def test_digit_goals_at_their_boundaries():
    def q(**kw):
        base = dict(num_samples=1000, confident=0.92, real_confident=0.95, class_shares=np.full(10, 0.1),
                    frechet=1.2, frechet_floor=1.0, copying_median=0.75, copying_test_median=1.0)
        return quality.DigitQuality(**{**base, **kw})

    assert all(q().goals().values())  # every goal is inclusive at its boundary
    assert not q(confident=0.919).goals()["confident"]
    assert not q(frechet=1.21).goals()["frechet_ratio"]
    assert not q(copying_median=0.749).goals()["copying_ratio"]
    assert not q(class_shares=np.array([0.039] + [0.961 / 9] * 9)).goals()["min_class_share"]
