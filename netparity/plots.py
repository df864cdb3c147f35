"""Drawing shared by `train --plot` and `report`: the decision regions of a 2-D classifier
with its data, axes and a class legend."""
import numpy as np

# class k: its points and (lighter) its region; sigmoid outputs use the first two
CLASS_COLOURS = ("#d7301f", "#2166ac", "#1a9850", "#984ea3", "#ff7f00", "#a65628")


def class_labels(Y):
    """Integer class per example: Y (1, m) of 0/1, or one-hot (n_y, m)."""
    return (Y[0] > 0.5).astype(int) if Y.shape[0] == 1 else np.argmax(Y, axis=0)


def draw_boundary(ax, X, Y, predict, pad=0.5, n=250):
    """Regions of ``predict(grid) -> classes`` (grid (2, n*n) float64, classes: bool or int,
    any shape with n*n entries, NumPy) over the data's box, the data coloured by class,
    axes named x1, x2 and a legend. Returns the grid's predicted classes (n, n)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    labels = class_labels(Y)
    k = max(2, int(labels.max()) + 1)
    colours = CLASS_COLOURS[:k]
    xs = np.linspace(X[0].min() - pad, X[0].max() + pad, n)
    ys = np.linspace(X[1].min() - pad, X[1].max() + pad, n)
    gx, gy = np.meshgrid(xs, ys)
    regions = np.asarray(predict(np.stack([gx.ravel(), gy.ravel()]))).reshape(gx.shape).astype(float)
    ax.contourf(gx, gy, regions, alpha=0.22, levels=np.arange(k + 1) - 0.5, cmap=ListedColormap(colours))
    for c, colour in enumerate(colours):
        sel = labels == c
        ax.scatter(X[0, sel], X[1, sel], s=8, color=colour, edgecolors="k", linewidths=0.2,
                   label=f"class {c}")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    handles = ax.get_legend_handles_labels()[0] + [
        Patch(color=colour, alpha=0.3, label=f"predicted {c}") for c, colour in enumerate(colours)]
    ax.legend(handles=handles, fontsize=7, loc="lower left", ncol=2 if k > 2 else 1)
    return regions
