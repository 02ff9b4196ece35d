"""What every language experiment's plots share: the Agg backend, the arm colors, saving, a dot per base.

The plots themselves live beside their experiments (experiments/gpt/plots.py, signals/plots.py,
domains/plots.py) and read nothing but a results dict.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARM_COLORS = {"student": "#3b75af", "control": "#999999", "cross_init": "#e1812c", "neutral": "#6aa84f",
              "prompted": "#b05fa8"}


def save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def base_dots(ax, x: float, values: list[float]) -> None:
    """One dot per base (jittered sideways so that they do not hide each other)."""
    n = len(values)
    ax.plot([x + 0.04 * (k - (n - 1) / 2) / max(1, n - 1) * 2 for k in range(n)], values, "o", color="k",
            markersize=2.5)
