import numpy as np
import pytest
import torch

from hwprune.data import load_dataset, load_npz
from hwprune.errors import DataError, OptionError, ShapeError
from hwprune.prune.train import evaluate, fit, lr_factor, make_cnn, make_mlp

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


# ---- data -------------------------------------------------------------------------------


def test_digits_split_is_stratified_scaled_and_float32(digits):
    assert digits.x_train.dtype == np.float32 and digits.x_test.dtype == np.float32
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert len(digits.x_test) == pytest.approx(0.2 * 1797, abs=1)
    assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
    assert digits.n_classes == 10
    train_share = np.bincount(digits.y_train) / len(digits.y_train)
    test_share = np.bincount(digits.y_test) / len(digits.y_test)
    assert np.abs(train_share - test_share).max() < 0.01


@pytest.mark.parametrize("name,classes", [("breast_cancer", 2), ("wine", 3)])
def test_other_sets_are_standardized_with_train_statistics(name, classes):
    data = load_dataset(name, seed=1)
    assert data.n_classes == classes
    assert np.allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(data.x_train.std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(data.x_test.mean(axis=0), 0.0, atol=1e-5)


def test_split_depends_on_seed_only(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    assert np.array_equal(digits.x_train, again.x_train)
    assert not np.array_equal(digits.x_train, other.x_train)


def test_unknown_dataset_is_an_option_error():
    with pytest.raises(OptionError, match="digits"):
        load_dataset("mnist")


def test_load_npz_roundtrip(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((5, 3), np.float64), y=np.array([0, 1, 2, 1, 0]))
    x, y = load_npz(tmp_path / "d.npz")
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (5, 3)
    np.savez(tmp_path / "f.npz", x=np.ones((2, 3)), y=np.array([1.0, 0.0]))
    assert load_npz(tmp_path / "f.npz")[1].tolist() == [1, 0]


@pytest.mark.parametrize(
    "arrays,message",
    [
        (dict(x=np.ones((3, 2))), "missing array.*y"),
        (dict(features=np.ones((3, 2)), y=np.zeros(3)), "missing array.*x"),
        (dict(x=np.ones((3, 2)), y=np.array([0.0, 1.5, 1.0])), "integers; index 1"),
        (dict(x=np.ones((3, 2)), y=np.array([0, -1, 1])), ">= 0"),
        (dict(x=np.array([[1.0, np.nan], [0, 0]]), y=np.array([0, 1])), r"NaN or Inf at index \(0, 1\)"),
        (dict(x=np.ones((3, 2)), y=np.array([0, 1])), "3 rows but y has 2"),
        (dict(x=np.ones((3, 2)), y=np.array(["a", "b", "c"])), "integers"),
    ],
)
def test_load_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_npz(tmp_path / "d.npz")


def test_load_npz_unreadable(tmp_path):
    (tmp_path / "bad.npz").write_text("not an archive")
    with pytest.raises(DataError, match="not a readable"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "absent.npz")


# ---- training ---------------------------------------------------------------------------


def test_fit_learns_digits(digits):
    model = make_mlp((64, 32, 10), seed=0)
    train_acc = fit(model, digits.x_train, digits.y_train, epochs=5, lr=3e-3, seed=0)
    assert train_acc > 0.9
    assert evaluate(model, digits.x_test, digits.y_test) > 0.88
    assert train_acc == evaluate(model, digits.x_train, digits.y_train)


def test_fit_is_deterministic_for_a_seed(digits):
    x, y = digits.x_train[:300], digits.y_train[:300]
    states = []
    for seed in (3, 3, 4):
        model = make_mlp((64, 16, 10), seed=0)
        fit(model, x, y, epochs=2, seed=seed)
        states.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(states[0], states[1])
    assert not torch.equal(states[0], states[2])


def test_make_mlp_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = make_mlp((4, 3, 2), seed=7)
    after = torch.rand(1)
    b = make_mlp((4, 3, 2), seed=7)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert [type(m).__name__ for m in a] == ["Linear", "ReLU", "Linear"]


def test_callback_sees_every_step_before_it_is_taken(digits):
    seen = []
    model = make_mlp((64, 10), seed=0)
    first = model[0].weight.detach().clone()

    def callback(step, m):
        if step == 0:
            assert torch.equal(m[0].weight, first)  # no update made yet
        seen.append(step)

    fit(model, digits.x_train[:100], digits.y_train[:100], epochs=3, batch_size=32, callback=callback)
    assert seen == list(range(3 * 4))


def test_lr_schedules():
    assert lr_factor(None, 5, 10) == 1.0
    assert lr_factor("cosine", 0, 10) == 1.0 and lr_factor("cosine", 10, 10) == pytest.approx(0.0)
    assert lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert [lr_factor("step", s, 8) for s in (0, 3, 4, 5, 6, 7)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor(lambda s, n: s / n, 2, 4) == 0.5
    with pytest.raises(OptionError, match="learning-rate schedule"):
        lr_factor("linear", 0, 1)


def test_labels_out_of_range_name_both_numbers():
    model = make_mlp((4, 3), seed=0)
    x = np.zeros((5, 4), np.float32)
    with pytest.raises(DataError, match=r"up to 4 \(5 classes\).*3 outputs"):
        fit(model, x, np.array([0, 1, 2, 3, 4]), epochs=1)


def test_wrong_input_shape_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"shape \(5,\)"):
        fit(make_mlp((4, 3), seed=0), np.zeros((2, 5)), np.array([0, 1]), epochs=1)


def test_bad_options():
    model, x, y = make_mlp((4, 3), seed=0), np.zeros((2, 4)), np.array([0, 1])
    with pytest.raises(OptionError, match="optimizer"):
        fit(model, x, y, epochs=1, optimizer="rmsprop")
    with pytest.raises(OptionError, match="epochs"):
        fit(model, x, y, epochs=-1)


def test_sgd_and_weight_decay_run(digits):
    model = make_mlp((64, 10), seed=0)
    acc = fit(model, digits.x_train, digits.y_train, epochs=2, lr=0.05, optimizer="sgd",
              weight_decay=1e-4, lr_schedule="cosine")
    assert acc > 0.8


def test_cnn_trains_on_images(digits):
    model = make_cnn(seed=0)
    images = digits.x_train.reshape(-1, 1, 8, 8)
    assert model(torch.as_tensor(images[:2])).shape == (2, 10)
    assert fit(model, images, digits.y_train, epochs=3, seed=0) > 0.85


def test_fit_trains_on_one_thread_by_default_and_restores_the_setting():
    model, x, y = make_mlp((4, 3), seed=0), np.zeros((8, 4)), np.arange(8) % 3
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit(model, x, y, epochs=1, callback=lambda step, m: seen.append(torch.get_num_threads()))
        assert seen == [1] and torch.get_num_threads() == 2
        fit(model, x, y, epochs=1, threads=None, callback=lambda step, m: seen.append(torch.get_num_threads()))
        assert seen[-1] == 2
        with pytest.raises(OptionError, match="threads"):
            fit(model, x, y, epochs=1, threads=0)
    finally:
        torch.set_num_threads(before)
