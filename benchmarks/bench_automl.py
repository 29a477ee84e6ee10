"""lakeloom's AutoML against plain FLAML, a default LightGBM and a trivial baseline.

Datasets ship inside installed packages (nothing is downloaded): scikit-learn's breast cancer,
wine, digits and diabetes; lakeloom's churn generator; matplotlib's monthly S&P 500 closes;
statsmodels' Mauna Loa CO2 (weekly, averaged per month). Splits are fixed (25% held out, or
the last 12 months); every method gets the same budget; scores are averaged over seeds and
reported normalised: (score - trivial) / (optimum - trivial), so 0 is the trivial baseline
(class prior, mean, seasonal naive) and 1 is perfect.

Metrics are FLAML's defaults: ROC AUC (binary), log loss (multiclass), R² (regression), MAE
(forecasts). The overrun of each lakeloom fit (its wall time minus the limit) is printed.

    python benchmarks/bench_automl.py                 # --budget 60 --seeds 3
    python benchmarks/bench_automl.py --quick         # 20 s, 1 seed, 3 datasets

Exits 1 when a goal is missed: lakeloom's mean normalised score above both plain FLAML's and
LightGBM's, at least as good as the better of the two on most datasets, never below seasonal
naive on a forecast, and every fit within 10% of its time limit.
"""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as skd
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split

TOLERANCE = 0.005  # normalised score difference treated as a tie


@dataclass
class Dataset:
    name: str
    kind: str  # binary, multiclass, regression, forecast
    frame: pd.DataFrame
    label: str
    note: str = ""


def _sk(name: str, loader: Callable[..., Any], kind: str) -> Dataset:
    X, y = loader(return_X_y=True, as_frame=True)
    return Dataset(name, kind, X.assign(target=y), "target")


def _churn() -> Dataset:
    from lakeloom.datasets import generate_churn

    data = generate_churn(3000, seed=7)
    frame = data.customers.to_pandas().merge(
        data.churn_labels.to_pandas()[["customer_id", "churned"]], on="customer_id"
    )
    return Dataset("churn", "binary", frame, "churned")


def _sp500() -> Dataset:
    path = importlib.resources.files("matplotlib") / "mpl-data/sample_data/Stocks.csv"
    raw = pd.read_csv(str(path), comment="#", usecols=["Date", "^GSPC"]).dropna()
    raw["Date"] = pd.to_datetime(raw["Date"])
    raw = raw[raw["Date"].dt.day == 1].rename(columns={"Date": "month", "^GSPC": "close"})
    return Dataset("sp500 (monthly)", "forecast", raw.reset_index(drop=True), "close")


def _co2() -> Dataset:
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"].interpolate()
    monthly = weekly.resample("MS").mean().dropna()
    frame = pd.DataFrame({"month": monthly.index, "co2": monthly.to_numpy()})
    return Dataset("co2 (monthly)", "forecast", frame, "co2")


def load(quick: bool) -> list[Dataset]:
    sets = [
        _sk("breast_cancer", skd.load_breast_cancer, "binary"),
        _sk("wine", skd.load_wine, "multiclass"),
        _sk("digits", skd.load_digits, "multiclass"),
        _sk("diabetes", skd.load_diabetes, "regression"),
        _churn(),
        _co2(),
        _sp500(),
    ]
    if quick:
        return [d for d in sets if d.name in ("breast_cancer", "diabetes") or "co2" in d.name]
    return sets


# -- scoring -----------------------------------------------------------------------------
def score(kind: str, y: np.ndarray, out: np.ndarray) -> float:
    if kind == "binary":
        return float(skm.roc_auc_score(y, out[:, 1]))
    if kind == "multiclass":
        return float(skm.log_loss(y, np.clip(out, 1e-15, 1), labels=np.arange(out.shape[1])))
    if kind == "regression":
        return float(skm.r2_score(y, out))
    return float(np.mean(np.abs(y - out)))


def normalise(kind: str, value: float, trivial: float) -> float:
    if kind == "binary":
        return (value - trivial) / (1.0 - trivial)
    if kind in ("multiclass", "forecast"):  # losses: optimum 0
        return (trivial - value) / trivial
    return (value - trivial) / (1.0 - trivial)


# -- tabular methods ---------------------------------------------------------------------
def _lgbm_frame(X: pd.DataFrame) -> pd.DataFrame:
    out = X.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]) or (
            out[col].dtype == object
            and len(out[col].dropna())
            and hasattr(out[col].dropna().iloc[0], "year")
        ):
            out[col] = pd.to_datetime(out[col]).astype("int64") // 86_400_000_000_000
        elif not pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].astype("category")
    return out


def run_tabular(d: Dataset, budget: float, seed: int, ws: Any) -> dict[str, tuple[float, float]]:
    """method -> (score, seconds) on the held-out rows."""
    import lightgbm as lgb
    from flaml import AutoML

    from lakeloom.automl import AutoMLClassifier, AutoMLRegressor

    classify = d.kind != "regression"
    train, test = train_test_split(
        d.frame, test_size=0.25, random_state=0, stratify=d.frame[d.label] if classify else None
    )
    X_train, y_train = train.drop(columns=[d.label]), train[d.label].to_numpy()
    X_test, y_test = test.drop(columns=[d.label]), test[d.label].to_numpy()
    classes = np.unique(y_train)
    y_codes = np.searchsorted(classes, y_test) if classify else y_test
    out: dict[str, tuple[float, float]] = {}

    def output(model: Any, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(X) if classify else model.predict(X))

    est = (AutoMLClassifier if classify else AutoMLRegressor)(
        experiment_name=f"bench-{d.name}",
        target_column=d.label,
        time_limit_minutes=budget / 60,
        seed=seed,
        context=ws,
    )
    began = time.monotonic()
    est.fit(train)
    out["lakeloom"] = (score(d.kind, y_codes, output(est, X_test)), time.monotonic() - began)

    flaml = AutoML()
    began = time.monotonic()
    flaml.fit(
        _lgbm_frame(X_train),
        y_train,
        task="classification" if classify else "regression",
        time_budget=budget,
        seed=seed,
        verbose=0,
        mlflow_logging=False,
    )
    out["flaml"] = (
        score(d.kind, y_codes, output(flaml, _lgbm_frame(X_test))),
        time.monotonic() - began,
    )

    model = (lgb.LGBMClassifier if classify else lgb.LGBMRegressor)(random_state=seed, verbose=-1)
    began = time.monotonic()
    model.fit(_lgbm_frame(X_train), y_train)
    out["lightgbm"] = (
        score(d.kind, y_codes, output(model, _lgbm_frame(X_test))),
        time.monotonic() - began,
    )

    if classify:
        prior = np.asarray([(y_train == c).mean() for c in classes])
        trivial = np.tile(prior, (len(y_test), 1))
    else:
        trivial = np.full(len(y_test), y_train.mean())
    out["trivial"] = (score(d.kind, y_codes, trivial), 0.0)
    return out


# -- forecasting methods -----------------------------------------------------------------
def _lgbm_forecast(y: np.ndarray, h: int, seed: int, lags: int = 12) -> np.ndarray:
    import lightgbm as lgb

    rows = np.asarray([y[i - lags : i] for i in range(lags, len(y))])
    model = lgb.LGBMRegressor(random_state=seed, verbose=-1).fit(rows, y[lags:])
    history = list(y)
    for _ in range(h):
        history.append(float(model.predict(np.asarray(history[-lags:])[None, :])[0]))
    return np.asarray(history[len(y) :])


def run_forecast(d: Dataset, budget: float, seed: int, ws: Any) -> dict[str, tuple[float, float]]:
    from flaml import AutoML

    from lakeloom.automl import AutoMLForecaster

    h = 12
    train, test = d.frame.iloc[:-h], d.frame.iloc[-h:]
    y_test = test[d.label].to_numpy()
    out: dict[str, tuple[float, float]] = {}
    est = AutoMLForecaster(
        time_column="month",
        target_column=d.label,
        horizon=h,
        frequency="MS",
        experiment_name=f"bench-{d.name}",
        time_limit_minutes=budget / 60,
        seed=seed,
        context=ws,
    )
    began = time.monotonic()
    est.fit(train)
    out["lakeloom"] = (
        score("forecast", y_test, est.forecast_[d.label].to_numpy()),
        time.monotonic() - began,
    )

    flaml = AutoML()
    learners = ["lgbm", "rf", "xgboost", "extra_tree", "xgb_limitdepth", "arima", "sarimax"]
    began = time.monotonic()
    flaml.fit(
        dataframe=train[["month", d.label]],
        label=d.label,
        task="ts_forecast",
        period=h,
        time_budget=budget,
        estimator_list=learners,
        seed=seed,
        verbose=0,
        mlflow_logging=False,
    )
    out["flaml"] = (
        score("forecast", y_test, np.asarray(flaml.predict(test[["month"]]))),
        time.monotonic() - began,
    )
    began = time.monotonic()
    lgbm = _lgbm_forecast(train[d.label].to_numpy(), h, seed)
    out["lightgbm"] = (score("forecast", y_test, lgbm), time.monotonic() - began)
    snaive = train[d.label].to_numpy()[-12:]
    out["trivial"] = (score("forecast", y_test, snaive), 0.0)
    return out


# -- main --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per fit")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20 s, 1 seed, 3 datasets")
    parser.add_argument(
        "--only", default=None, metavar="A,B", help="Only datasets whose name starts so."
    )
    args = parser.parse_args(argv)
    budget, seeds = (20.0, 1) if args.quick else (args.budget, args.seeds)
    warnings.filterwarnings("ignore")
    logging.getLogger("flaml").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    from lakeloom import Workspace

    methods = ("lakeloom", "flaml", "lightgbm")
    load_before = os.getloadavg()
    rows, overruns = [], []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(tmp)
        # A workspace's MLflow database is created once, on first use; users pay that once,
        # not in every fit, so it is not part of any fit's time here.
        from lakeloom.tracking.store import ensure_experiment

        ensure_experiment(ws.tracking, "warm-up")
        chosen = [p.strip() for p in args.only.split(",")] if args.only else None
        for d in load(args.quick):
            if chosen and not any(d.name.startswith(p) for p in chosen):
                continue
            per_seed = []
            for seed in range(seeds):
                run = run_forecast if d.kind == "forecast" else run_tabular
                result = run(d, budget, seed, ws)
                per_seed.append(result)
                overruns.append((d.name, seed, result["lakeloom"][1] - budget))
                print(
                    f"  {d.name} seed {seed}: "
                    + ", ".join(f"{m} {v[0]:.4f} ({v[1]:.0f}s)" for m, v in result.items()),
                    flush=True,
                )
            trivial = float(np.mean([r["trivial"][0] for r in per_seed]))
            row = {"dataset": d.name, "metric": d.kind, "note": d.note}
            for m in methods:
                raw = float(np.mean([r[m][0] for r in per_seed]))
                row[m] = normalise(d.kind, raw, trivial)
            rows.append(row)
        ws.close()

    table = pd.DataFrame(rows)
    load_after = os.getloadavg()
    print(
        f"\nMachine: {os.cpu_count()} cores; load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.1f}' for x in load_before)} at the start, "
        f"{', '.join(f'{x:.1f}' for x in load_after)} at the end"
    )
    print(
        f"\nNormalised scores ((score - trivial) / (optimum - trivial); trivial = 0), "
        f"budget {budget:g}s, {seeds} seed(s):\n"
    )
    print("| dataset | lakeloom | plain FLAML | LightGBM | trivial |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['lakeloom']:.3f} | {r['flaml']:.3f} | {r['lightgbm']:.3f} | 0 |"
        )
    means = {m: float(table[m].mean()) for m in methods}
    print(
        f"| **mean** | {means['lakeloom']:.3f} | {means['flaml']:.3f} | "
        f"{means['lightgbm']:.3f} | 0 |"
    )
    for r in rows:
        if r["note"]:
            print(f"\nNote: {r['dataset']}: {r['note']}")
    print("\nOverrun of each lakeloom fit (seconds past the limit; negative = early):")
    for name, seed, over in overruns:
        print(f"  {name} seed {seed}: {over:+.1f}s ({over / budget:+.1%})")

    better = table["lakeloom"] >= table[["flaml", "lightgbm"]].max(axis=1) - TOLERANCE
    forecasts = table[table["metric"] == "forecast"]
    most = f"as good as the better of the two on most datasets ({int(better.sum())}/{len(table)})"
    goals = {
        "mean above plain FLAML": means["lakeloom"] > means["flaml"],
        "mean above LightGBM": means["lakeloom"] > means["lightgbm"],
        most: bool(better.sum() > len(table) / 2),
        "never below seasonal naive on a forecast": bool((forecasts["lakeloom"] >= 0).all()),
        "every fit within 10% of its limit": all(o <= 0.1 * budget for _, _, o in overruns),
    }
    print()
    for goal, ok in goals.items():
        print(f"{'met   ' if ok else 'MISSED'} {goal}")
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
