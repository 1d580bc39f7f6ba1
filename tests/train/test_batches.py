"""Data order: plain and class-balanced batches are functions of (seed, step) alone."""


def test_balanced_batches_even_out_classes_and_are_reproducible():
    import numpy as np

    from synthmed.train.batches import balanced_batch_indices

    labels = np.array([0] * 90 + [1] * 10)  # 1:9, like PneumoniaMNIST's normal:pneumonia train subset
    draws = np.concatenate([balanced_batch_indices(labels, 64, seed=0, step=s, power=1.0) for s in range(50)])
    minority_share = (labels[draws] == 1).mean()
    assert 0.45 < minority_share < 0.55
    plain = np.concatenate([balanced_batch_indices(labels, 64, seed=0, step=s, power=0.0) for s in range(50)])
    assert 0.07 < (labels[plain] == 1).mean() < 0.13
    again = balanced_batch_indices(labels, 64, seed=0, step=7, power=1.0)
    assert np.array_equal(again, balanced_batch_indices(labels, 64, seed=0, step=7, power=1.0))
    assert not np.array_equal(again, balanced_batch_indices(labels, 64, seed=0, step=8, power=1.0))


def test_batch_order_is_a_function_of_seed_and_step():
    from synthmed.train.batches import batch_indices

    a = batch_indices(10, 4, seed=0, step=3)
    assert (a == batch_indices(10, 4, seed=0, step=3)).all()
    epoch = sorted(int(i) for s in range(5) for i in batch_indices(10, 4, seed=0, step=s)[:])[:10]
    first_epoch = [int(i) for s in (0, 1) for i in batch_indices(10, 4, seed=0, step=s)]
    first_epoch += [int(i) for i in batch_indices(10, 4, seed=0, step=2)[:2]]
    assert sorted(first_epoch) == list(range(10)) and len(epoch) == 10
    assert not (batch_indices(10, 4, seed=1, step=0) == batch_indices(10, 4, seed=0, step=0)).all()
