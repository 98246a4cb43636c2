"""Training: the loss against an independent computation, the fused loop against the readable step,
a short run that lowers the loss, EMA, the progress bar, and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ddpm_lib import models, schedules, train

SCHEDULE = schedules.linear(T=50, beta_start=1e-3, beta_end=0.2)


# One optimizer definition for every test: the compiled training loop is cached by the
# structure of (model, optimizer), which includes the optax transformation object.
TX = train.make_optimizer(3e-3, warmup_steps=10)


def _setup(seed=0):
    model = models.MLPDenoiser((2,), width=32, num_blocks=2, time_dim=16, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, TX, wrt=nnx.Param)
    return model, optimizer


def _gaussian_data(n=512):
    return jnp.array([1.0, -0.5]) + jnp.array([0.3, 0.6]) * jax.random.normal(jax.random.key(0), (n, 2))


def test_draw_batch_shapes_and_ranges():
    data = _gaussian_data(10)
    x0, t, eps = train.draw_batch(jax.random.key(1), data, SCHEDULE.T, 4096)
    assert x0.shape == (4096, 2) and t.shape == (4096,) and eps.shape == (4096, 2)
    assert int(t.min()) == 1 and int(t.max()) == SCHEDULE.T  # both ends of 1..T are drawn
    assert np.isin(np.asarray(x0), np.asarray(data)).all()


@pytest.mark.parametrize("prediction", ["eps", "mean"])
def test_diffusion_loss_matches_numpy(prediction):
    f = lambda x, t: 0.5 * x + 0.01 * t[:, None]  # noqa: E731  a fixed stand-in for a network
    x0 = jax.random.normal(jax.random.key(2), (6, 2))
    eps = jax.random.normal(jax.random.key(3), (6, 2))
    t = jnp.array([1, 2, 7, 20, 49, 50])
    got = float(train.diffusion_loss(f, SCHEDULE, x0, t, eps, prediction))

    b = np.concatenate([[0.0], np.linspace(1e-3, 0.2, 50)])
    ab = np.cumprod(1.0 - b)
    x0n, epsn, tn = np.asarray(x0, np.float64), np.asarray(eps, np.float64), np.asarray(t)
    xt = np.sqrt(ab[tn])[:, None] * x0n + np.sqrt(1 - ab[tn])[:, None] * epsn
    out = 0.5 * xt + 0.01 * tn[:, None]
    if prediction == "eps":
        target = epsn
    else:
        ab_prev = ab[tn - 1]
        target = (np.sqrt(ab_prev) * b[tn] / (1 - ab[tn]))[:, None] * x0n + \
                 (np.sqrt(1 - b[tn]) * (1 - ab_prev) / (1 - ab[tn]))[:, None] * xt
    np.testing.assert_allclose(got, np.mean((out - target) ** 2), rtol=1e-5)


def test_fused_loop_equals_readable_steps():
    data = _gaussian_data()
    key = jax.random.key(4)
    m1, o1 = _setup()
    step_losses = [float(train.train_step(m1, o1, SCHEDULE, data, key, batch_size=16)) for _ in range(6)]
    m2, o2 = _setup()
    result = train.train(m2, o2, SCHEDULE, data, key, num_steps=6, batch_size=16, steps_per_call=3)
    np.testing.assert_allclose(result.losses, step_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(nnx.state(m1, nnx.Param)), jax.tree.leaves(nnx.state(m2, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert int(o2.step[...]) == 6


def test_run_does_not_depend_on_how_it_is_cut():
    data = _gaussian_data()
    m1, o1 = _setup()
    whole = train.train(m1, o1, SCHEDULE, data, jax.random.key(5), num_steps=6, batch_size=16, steps_per_call=3)
    m2, o2 = _setup()
    first = train.train(m2, o2, SCHEDULE, data, jax.random.key(5), num_steps=3, batch_size=16)
    second = train.train(m2, o2, SCHEDULE, data, jax.random.key(5), num_steps=3, batch_size=16,
                         ema_model=first.ema_model)
    np.testing.assert_allclose(np.concatenate([first.losses, second.losses]), whole.losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(nnx.state(whole.ema_model, nnx.Param)),
                    jax.tree.leaves(nnx.state(second.ema_model, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_short_training_lowers_the_loss():
    data = _gaussian_data()
    model, optimizer = _setup()
    result = train.train(model, optimizer, SCHEDULE, data, jax.random.key(6), num_steps=400, batch_size=128)
    assert result.losses.shape == (400,)
    first, last = result.losses[:5].mean(), result.losses[-50:].mean()
    # The untrained network predicts eps = 0 (loss 1 per coordinate); training must cut that well down.
    assert first > 0.8 and last < 0.5 * first, (first, last)


def test_ema_is_an_average_of_the_weights():
    data = _gaussian_data()
    model, optimizer = _setup()
    # decay 0: the average is the latest weights
    result = train.train(model, optimizer, SCHEDULE, data, jax.random.key(7), num_steps=3, batch_size=16, ema_decay=0.0)
    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), jax.tree.leaves(nnx.state(result.ema_model, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # a decay near 1 (with warm-up d_n = (1 + n) / (10 + n)): the average lags the weights
    before = [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
    result = train.train(model, optimizer, SCHEDULE, data, jax.random.key(8), num_steps=3, batch_size=16,
                         ema_decay=0.99)
    after = jax.tree.leaves(nnx.state(model, nnx.Param))
    ema = jax.tree.leaves(nnx.state(result.ema_model, nnx.Param))
    moved = sum(float(jnp.sum(jnp.abs(a - b))) for a, b in zip(after, before))
    gap = sum(float(jnp.sum(jnp.abs(a - e))) for a, e in zip(after, ema))
    assert 0 < gap < moved


def test_progress_bar_only_when_asked_and_no_ema(capsys):
    data = _gaussian_data()
    model, optimizer = _setup()
    none = train.train(model, optimizer, SCHEDULE, data, jax.random.key(9), num_steps=3, batch_size=16,
                       ema_decay=None)
    assert none.ema_model is None
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    train.train(model, optimizer, SCHEDULE, data, jax.random.key(9), num_steps=3, batch_size=16, progress=True,
                ema_decay=None)
    err = capsys.readouterr().err
    assert "3/3" in err and err.endswith("\n")


def test_bad_inputs_raise_value_errors():
    data = _gaussian_data(16)
    model, optimizer = _setup()
    key = jax.random.key(0)
    cases = [
        (dict(num_steps=0), "num_steps"),
        (dict(num_steps=2, batch_size=0), "batch_size"),
        (dict(num_steps=2, prediction="x0"), "prediction"),
        (dict(num_steps=2, ema_decay=1.0), "ema_decay"),
        (dict(num_steps=2, steps_per_call=0), "steps_per_call"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            train.train(model, optimizer, SCHEDULE, data, key, **kwargs)
    with pytest.raises(ValueError, match="data"):
        train.train(model, optimizer, SCHEDULE, jnp.ones((16, 3)), key, num_steps=2)
    with pytest.raises(ValueError, match="data"):
        train.train_step(model, optimizer, SCHEDULE, jnp.ones((2,)), key)
    with pytest.raises(ValueError, match="prediction"):
        train.diffusion_loss(model, SCHEDULE, data, jnp.ones((16,), jnp.int32), data, "noise")
    with pytest.raises(ValueError, match="learning_rate"):
        train.make_optimizer(0.0)
    with pytest.raises(ValueError, match="clip_norm"):
        train.make_optimizer(1e-3, clip_norm=-1.0)


@pytest.mark.parametrize("total_steps", [None, 50])
def test_no_warm_up_means_the_first_update_is_a_full_one(total_steps):
    # Adam's first update of a parameter with a constant gradient has size learning_rate.
    # A warm-up of length 1 (the natural way to write "no warm-up" in optax) starts at 0
    # and makes the first step no step at all.
    opt = train.make_optimizer(0.01, warmup_steps=0, total_steps=total_steps)
    params = jnp.ones(3)
    state = opt.init(params)
    updates, state = opt.update(jnp.full(3, 0.1), state, params)
    np.testing.assert_allclose(np.asarray(updates), -0.01, rtol=1e-4)
    # with a warm-up, the first step still starts from a learning rate of 0
    warm = train.make_optimizer(0.01, warmup_steps=10, total_steps=total_steps)
    first, _ = warm.update(jnp.full(3, 0.1), warm.init(params), params)
    assert np.all(np.asarray(first) == 0.0)
