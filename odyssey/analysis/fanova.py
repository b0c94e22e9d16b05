"""Exact functional ANOVA of a random forest (Hutter, Hoos & Leyton-Brown, ICML 2014).

Why this is ours: Optuna's `FanovaImportanceEvaluator` returns main effects only (no pairwise
interaction terms, no predicted marginal curves), and the authors' `fanova` package needs pyrfr,
built with SWIG, and is unmaintained. The study needs main effects, every pairwise interaction
and marginal curves with a spread across trees, so we compute them here on scikit-learn's
`RandomForestRegressor`.

The computation is exact per tree. A regression tree splits the search box (each
hyperparameter in its search scale, under the uniform measure the random search sampled from)
into axis-aligned leaf boxes with constant predictions. For a set U of hyperparameters the
marginal a_U(x_U) (the prediction averaged over all the others) is piecewise constant on the grid
of the tree's split points in U, so its variance is a finite weighted sum. With f0 the tree's
mean and V its total variance:

    V_d  = Var(a_d)                       main effect of d
    V_de = Var(a_de) - V_d - V_e          pairwise interaction of d and e

and each fraction is V_U / V. Fractions are computed per tree and summarised by their mean and
standard deviation over trees, as in the paper. All per-tree work is numpy over the leaf boxes:
one (leaves x leaves) overlap matrix per hyperparameter, and one quadratic form per term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from threadpoolctl import threadpool_limits

from .hyperparameters import Hyperparameter


@dataclass
class _Tree:
    """One tree's leaf partition: boxes (search scale) and predictions."""

    lo: np.ndarray      # (L, D)
    hi: np.ndarray      # (L, D)
    value: np.ndarray   # (L,)
    mean: float
    variance: float


def _leaf_boxes(estimator, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Leaf boxes of a fitted sklearn tree within [lows, highs], level by level (vectorised)."""
    t = estimator.tree_
    left, right, feat, thr = t.children_left, t.children_right, t.feature, t.threshold
    n = t.node_count
    lo = np.empty((n, lows.size))
    hi = np.empty((n, lows.size))
    lo[0], hi[0] = lows, highs
    frontier = np.array([0])
    while frontier.size:
        internal = frontier[left[frontier] != -1]
        if internal.size == 0:
            break
        f = feat[internal]
        th = np.clip(thr[internal], lo[internal, f], hi[internal, f])
        lch, rch = left[internal], right[internal]
        lo[lch], hi[lch] = lo[internal], hi[internal]
        lo[rch], hi[rch] = lo[internal], hi[internal]
        hi[lch, f] = th
        lo[rch, f] = th
        frontier = np.concatenate([lch, rch])
    leaves = np.flatnonzero(left == -1)
    return lo[leaves], hi[leaves], t.value[leaves, 0, 0].astype(float)


def _overlaps(lo: np.ndarray, hi: np.ndarray, widths: np.ndarray) -> list[np.ndarray]:
    """Per dimension, the (leaves x leaves) overlap of the leaves' ranges, as box fractions.

    With c_l = (v_l - f0) * (volume fraction of leaf l outside U), the centred marginal is
    a_U(x_U) - f0 = sum_l c_l 1[x_U in leaf l restricted to U] (the leaves that contain x_U tile
    the other dimensions), so its variance under the uniform measure is
    sum_{l,l'} c_l c_l' prod_{d in U} overlap_d(l, l'). That is O(L^2) per term instead of a
    product over the grid of split points, which is O(L K_d K_e) for a pair.
    """
    out = []
    for d in range(lo.shape[1]):
        lo_d, hi_d = lo[:, d] / widths[d], hi[:, d] / widths[d]
        o = np.minimum(hi_d[:, None], hi_d[None, :])
        o -= np.maximum(lo_d[:, None], lo_d[None, :])
        np.maximum(o, 0.0, out=o)
        out.append(o)
    return out


@dataclass
class FanovaResult:
    """Variance fractions (per tree) and the trees, to evaluate marginals on any grid."""

    space: tuple[Hyperparameter, ...]
    main_per_tree: np.ndarray             # (T, D)
    pair_per_tree: np.ndarray             # (T, P)
    pairs: list[tuple[int, int]]
    n_samples: int
    trees: list[_Tree] = field(repr=False)
    n_capped: int = 0                     # responses lowered to `cap` before the fit
    cap: float | None = None
    fallback: str | None = None           # why these trials replaced the requested ones

    @property
    def names(self) -> list[str]:
        """Hyperparameter names in column order."""
        return [hp.name for hp in self.space]

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"unknown hyperparameter {name!r}; the fANOVA has "
                             f"{', '.join(self.names)}")
        return self.names.index(name)

    def main_effects(self) -> pd.DataFrame:
        """Fraction of variance of each hyperparameter alone: mean and std over trees."""
        return pd.DataFrame({"mean": self.main_per_tree.mean(0), "std": self.main_per_tree.std(0)},
                            index=pd.Index(self.names, name="hyperparameter")
                            ).sort_values("mean", ascending=False)

    def interactions(self) -> pd.DataFrame:
        """Fraction of variance of each pairwise interaction: mean and std over trees."""
        idx = pd.MultiIndex.from_tuples([(self.names[a], self.names[b]) for a, b in self.pairs],
                                        names=["first", "second"])
        return pd.DataFrame({"mean": self.pair_per_tree.mean(0) if self.pairs else [],
                             "std": self.pair_per_tree.std(0) if self.pairs else []},
                            index=idx).sort_values("mean", ascending=False)

    def fractions(self) -> pd.DataFrame:
        """Tidy table of every term: main effects, pairs and the rest (higher order)."""
        rows = [{"term": n, "kind": "main", "mean": m, "std": s}
                for n, m, s in zip(self.names, self.main_per_tree.mean(0),
                                   self.main_per_tree.std(0), strict=True)]
        for k, (a, b) in enumerate(self.pairs):
            col = self.pair_per_tree[:, k]
            rows.append({"term": f"{self.names[a]} x {self.names[b]}", "kind": "pair",
                         "mean": col.mean(), "std": col.std()})
        rest = 1.0 - self.main_per_tree.sum(1) - self.pair_per_tree.sum(1)
        rows.append({"term": "higher order", "kind": "rest", "mean": rest.mean(),
                     "std": rest.std()})
        return pd.DataFrame(rows)

    def grid(self, name: str, size: int = 100) -> np.ndarray:
        """Evenly spaced points in the search scale of `name` (log10 for log parameters)."""
        lo, hi = self.space[self._index(name)].bounds
        return np.linspace(lo, hi, size)

    def _tree_marginals(self, dims: Sequence[int], grids: Sequence[np.ndarray]) -> np.ndarray:
        """Per-tree marginal of the dims on the grid: (T, G) or (T, G1, G2)."""
        with threadpool_limits(limits=1, user_api="blas"):
            return self._tree_marginals_inner(dims, grids)

    def _tree_marginals_inner(self, dims: Sequence[int], grids: Sequence[np.ndarray]
                              ) -> np.ndarray:
        widths = np.array([hp.bounds[1] - hp.bounds[0] for hp in self.space])
        out = []
        for tree in self.trees:
            frac = (tree.hi - tree.lo) / widths
            rest = np.ones(len(tree.value))
            for d in range(len(self.space)):
                if d not in dims:
                    rest = rest * frac[:, d]
            weight = tree.value * rest
            members = []
            for d, g in zip(dims, grids, strict=True):
                top = np.isclose(g, self.space[d].bounds[1])
                inside = (tree.lo[:, d, None] <= g[None, :]) & (
                    (g[None, :] < tree.hi[:, d, None])
                    | (top[None, :] & (tree.hi[:, d, None] >= g[None, :])))
                members.append(inside.astype(float))
            if len(dims) == 1:
                out.append(weight @ members[0])
            else:
                out.append((members[0] * weight[:, None]).T @ members[1])
        return np.asarray(out)

    def marginal_per_tree(self, name: str, size: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Grid (natural units) and each tree's marginal of `name` on it: (size,), (T, size)."""
        d = self._index(name)
        g = self.grid(name, size)
        return self.space[d].from_search(g), self._tree_marginals([d], [g])

    def marginal(self, name: str, size: int = 100) -> pd.DataFrame:
        """Predicted marginal of one hyperparameter: value (natural units), mean and std over trees.

        A grid point on a split boundary belongs to the upper box (left-closed boxes).
        """
        d = self._index(name)
        g = self.grid(name, size)
        per_tree = self._tree_marginals([d], [g])
        return pd.DataFrame({"value": self.space[d].from_search(g), "search": g,
                             "mean": per_tree.mean(0), "std": per_tree.std(0)})

    def pair_marginal(self, first: str, second: str, size: int = 40
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Predicted joint marginal of two hyperparameters on a size x size grid.

        Returns (values of first, values of second, mean (size, size), std (size, size)), with
        rows indexed by `first`.
        """
        a, b = self._index(first), self._index(second)
        if a == b:
            raise ValueError("pair_marginal needs two different hyperparameters")
        ga, gb = self.grid(first, size), self.grid(second, size)
        per_tree = self._tree_marginals([a, b], [ga, gb])
        return (self.space[a].from_search(ga), self.space[b].from_search(gb),
                per_tree.mean(0), per_tree.std(0))


def fanova(params: pd.DataFrame | np.ndarray, y: Sequence[float], space: Sequence[Hyperparameter],
           *, n_trees: int = 100, seed: int = 0, min_samples_leaf: int = 1,
           max_depth: int | None = None, max_features: float | str | None = 1.0,
           n_jobs: int | None = None) -> FanovaResult:
    """Fit a random forest to (hyperparameters in natural units -> y) and decompose its variance.

    `params` has one column per hyperparameter of `space` (a DataFrame is matched by name, an
    array by position). Trees whose prediction is constant over the box carry no variance and
    are left out of the summaries, as in Hutter et al.; if every tree is constant, a ValueError.
    """
    space = tuple(space)
    if isinstance(params, pd.DataFrame):
        missing = [hp.name for hp in space if hp.name not in params.columns]
        if missing:
            raise ValueError(f"fanova: columns {missing} missing from the parameter table "
                             f"(has {list(params.columns)})")
        raw = params[[hp.name for hp in space]].to_numpy(dtype=float)
    else:
        raw = np.asarray(params, dtype=float)
    y = np.asarray(y, dtype=float)
    if raw.ndim != 2 or raw.shape[1] != len(space) or raw.shape[0] != y.size:
        raise ValueError(f"fanova: expected params of shape (n, {len(space)}) and y of length n; "
                         f"got {raw.shape} and {y.shape}")
    if y.size < 2:
        raise ValueError(f"fanova needs at least 2 observations, got {y.size}")
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(raw)):
        raise ValueError("fanova: parameters and targets must be finite")
    X = np.column_stack([hp.to_search(raw[:, d]) for d, hp in enumerate(space)])
    lows = np.array([hp.bounds[0] for hp in space])
    highs = np.array([hp.bounds[1] for hp in space])
    outside = (X - lows < -1e-9) | (X - highs > 1e-9)
    if outside.any():
        d = int(np.argwhere(outside)[0, 1])
        raise ValueError(f"fanova: values of {space[d].name!r} lie outside its search bounds "
                         f"[{space[d].low}, {space[d].high}]")
    forest = RandomForestRegressor(n_estimators=n_trees, random_state=seed,
                                   min_samples_leaf=min_samples_leaf, max_depth=max_depth,
                                   max_features=max_features, n_jobs=n_jobs)
    forest.fit(X, y)
    # The per-tree products are small: one BLAS thread is fastest, and spares a loaded machine
    # the spinning of idle BLAS threads (measured: 50x slower marginals with the default pool).
    with threadpool_limits(limits=1, user_api="blas"):
        return _decompose(forest, space, lows, highs, int(y.size))


def _decompose(forest: RandomForestRegressor, space: tuple[Hyperparameter, ...],
               lows: np.ndarray, highs: np.ndarray, n_samples: int) -> FanovaResult:
    """Exact variance decomposition of every tree of a fitted forest (see the module doc)."""
    widths = highs - lows
    D = len(space)
    pairs = list(combinations(range(D), 2))
    mains, pair_fracs, trees = [], [], []
    for est in forest.estimators_:
        lo, hi, v = _leaf_boxes(est, lows, highs)
        frac = (hi - lo) / widths
        vol = frac.prod(1)
        f0 = float(vol @ v)
        total = float(vol @ (v - f0) ** 2)
        if total <= 1e-12 * max(1.0, f0 * f0):
            continue
        # Var(a_U) = sum_{l,l'} c_l c_l' prod_{d in U} overlap_d(l, l'), with c the centred leaf
        # values times the volume fraction outside U (see _overlaps); exact, no cancellation.
        vc = v - f0
        overlap = _overlaps(lo, hi, widths)
        var_main = np.empty(D)
        for d in range(D):
            c = vc * np.prod(np.delete(frac, d, axis=1), axis=1)
            var_main[d] = c @ (overlap[d] @ c)
        var_pair = np.empty(len(pairs))
        both = np.empty_like(overlap[0])
        for k, (a_, b_) in enumerate(pairs):
            c = vc * np.prod(np.delete(frac, [a_, b_], axis=1), axis=1)
            np.multiply(overlap[a_], overlap[b_], out=both)
            var_pair[k] = c @ (both @ c) - var_main[a_] - var_main[b_]
        mains.append(var_main / total)
        pair_fracs.append(var_pair / total)
        trees.append(_Tree(lo, hi, v, f0, total))
    if not trees:
        raise ValueError("fanova: every tree predicts a constant; the target has no variance "
                         "that the hyperparameters explain")
    return FanovaResult(space=space, main_per_tree=np.asarray(mains),
                        pair_per_tree=np.asarray(pair_fracs).reshape(len(trees), len(pairs)),
                        pairs=pairs, n_samples=n_samples, trees=trees)
