"""Figure axes: taken from the bulk of the trials, in log scale when the bulk spans > 4x."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from odyssey.analysis import complete, load_sweep
from odyssey.analysis.figures import (
    learning_rate_scatter,
    log_worthy,
    shift,
    value_axis,
    variant_boxes,
)

matplotlib.use("Agg")


def test_log_scale_only_for_positive_ranges_wider_than_four_times():
    assert log_worthy(8.0, 40.0) and not log_worthy(8.0, 30.0)
    assert not log_worthy(0.0, 100.0) and not log_worthy(-1.0, 100.0)
    assert shift(10.0, 0.5, 1.0, 100.0, log=True) == pytest.approx(100.0)  # half of 2 decades
    assert shift(10.0, 0.5, 0.0, 100.0, log=False) == pytest.approx(60.0)
    from matplotlib.figure import Figure
    ax = Figure().subplots()
    assert value_axis(ax, 8.0, 80.0) and ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert low < 8.0 and high > 80.0 and low > 0


def _with_scores(frame: pd.DataFrame, scale: float) -> pd.DataFrame:
    """Scores spread from 8 to 8 * scale (a music-like NLL bulk), two diverged trials."""
    out = frame.copy()
    rng = np.random.default_rng(1)
    out["test_metric"] = 8.0 * scale ** rng.uniform(0, 1, len(out))
    out.loc[out.index[:2], "test_metric"] = [3000.0, 5000.0]
    return out


@pytest.mark.parametrize(("scale", "log"), [(12.0, True), (1.5, False)])
def test_box_and_scatter_axes_follow_the_bulk(sweep_factory, scale, log):
    sweep_factory("fig", tasks=("music",), variants=["V", "NFG"], n_trials=30, n_failed=0)
    data = _with_scores(complete(load_sweep("fig", sweep_factory.results)), scale)
    fig = variant_boxes({"all": data}, pd.DataFrame(), "music", metric_label="NLL")
    ax = fig.axes[0]
    assert (ax.get_yscale() == "log") is log
    assert ax.get_ylim()[1] < 1000                           # the diverged trials are off scale
    assert "(log scale)" in ax.get_ylabel() if log else "(log scale)" not in ax.get_ylabel()
    marks = [t.get_text() for t in ax.texts]
    assert any(m.endswith("off scale") for m in marks)
    fig = learning_rate_scatter(data, "music", metric_label="NLL")
    assert (fig.axes[0].get_yscale() == "log") is log and fig.axes[0].get_ylim()[1] < 1000
