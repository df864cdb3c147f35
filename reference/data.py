"""Seeded data sets (never downloaded) and the mini-batch order every backend replays.

Every generator returns ``(X, Y)`` with examples in columns: X (n_x, m) float64,
Y (1, m) float64 in {0, 1} for binary sets, or (K, m) one-hot for multi-class sets.
Each draws from its own ``np.random.RandomState(seed)``; global NumPy state is untouched.
"""
import numpy as np


def load_planar_dataset(seed=1, m=400):
    """The planar "flower": m points (m/2 per class) on a rose r = 4 sin(4t), with
    Gaussian noise (sd 0.2) on both the angle and the radius; class j takes the angles
    [3.12 j, 3.12 (j + 1)]. Draw order per class: angle noise, then radius noise."""
    rng = np.random.RandomState(seed)
    n = m // 2
    X = np.zeros((m, 2))
    Y = np.zeros((m, 1))
    for j in range(2):
        ix = range(n * j, n * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.randn(n) * 0.2
        r = 4 * np.sin(4 * t) + rng.randn(n) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    return X.T, Y.T


def make_xor(m=400, seed=2, noise=0.1):
    """Binary XOR of the signs of two coordinates, uniform in [-1, 1]^2 plus noise.
    Draws: the points P = uniform(-1, 1, (2, m)), then the noise randn(2, m);
    Y = (P_0 > 0) xor (P_1 > 0) of the noise-free points, X = P + noise * randn."""
    rng = np.random.RandomState(seed)
    P = rng.uniform(-1, 1, size=(2, m))
    Y = ((P[0] > 0) ^ (P[1] > 0)).astype(np.float64)[None, :]
    return P + noise * rng.randn(2, m), Y


def make_circles(m=400, seed=3, noise=0.08, factor=0.5):
    """Binary: a unit circle (class 0) around a circle of radius ``factor`` (class 1).
    Example i has class i mod 2. Draws: the angles uniform(0, 2 pi, m), then the noise
    randn(2, m); X = radius (cos angle, sin angle) + noise * randn."""
    rng = np.random.RandomState(seed)
    Y = (np.arange(m) % 2).astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi, size=m)
    radius = np.where(Y == 1, factor, 1.0)
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)]) + noise * rng.randn(2, m)
    return X, Y[None, :]


def one_hot(labels, num_classes):
    """(m,) integer labels -> (K, m) float64 one-hot columns."""
    Y = np.zeros((num_classes, labels.size))
    Y[labels, np.arange(labels.size)] = 1.0
    return Y


def make_spirals(m=300, seed=4, num_classes=3, noise=0.2):
    """Multi-class: K interleaved spiral arms in 2-D, m/K points each, one-hot Y.
    Arm k (examples k m/K ... (k + 1) m/K - 1): radius r = linspace(0, 1, m/K), angle
    t = linspace(4k, 4(k + 1), m/K) + noise * randn(m/K) (one draw per arm, in order),
    X = (r sin t, r cos t)."""
    rng = np.random.RandomState(seed)
    n = m // num_classes
    X = np.zeros((2, n * num_classes))
    labels = np.repeat(np.arange(num_classes), n)
    for k in range(num_classes):
        r = np.linspace(0.0, 1.0, n)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n) + rng.randn(n) * noise
        X[:, k * n:(k + 1) * n] = np.stack([r * np.sin(t), r * np.cos(t)])
    return X, one_hot(labels, num_classes)


def make_blobs(m=300, seed=5, num_classes=3, num_features=2, spread=1.0):
    """Multi-class: K Gaussian blobs with centres drawn in [-5, 5]^n_x, one-hot Y.
    Example i has class i mod K. Draws: the centres uniform(-5, 5, (n_x, K)), then
    randn(n_x, m); X = centre of the class + spread * randn."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-5, 5, size=(num_features, num_classes))
    labels = np.arange(m) % num_classes
    X = centres[:, labels] + spread * rng.randn(num_features, m)
    return X, one_hot(labels, num_classes)


DATASETS = {
    "planar": load_planar_dataset,
    "xor": make_xor,
    "circles": make_circles,
    "spirals": make_spirals,
    "blobs": make_blobs,
}


def load_dataset(name, **kwargs):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


def batch_order(m, batch_size=None, seed=0, epoch=0):
    """Column indices of each mini-batch of one epoch, as a list of int64 arrays.

    batch_size None (or >= m): one batch, the columns in their natural order (batch GD,
    summing in the same order as the article). Otherwise the columns are permuted by
    ``RandomState(seed + epoch).permutation(m)`` and cut into consecutive chunks; the last
    one may be smaller. batch_size 1 is SGD. Backends replay these indices exactly.
    """
    if m <= 0:
        raise ValueError(f"need at least one example, got m = {m}")
    if batch_size is None or batch_size >= m:
        return [np.arange(m)]
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    perm = np.random.RandomState(seed + epoch).permutation(m)
    return [perm[i:i + batch_size] for i in range(0, m, batch_size)]
