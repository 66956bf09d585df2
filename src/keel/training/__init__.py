"""Training: tracked train and evaluate steps, hyperparameter search, reproduction, retraining."""

from keel.training._data import (
    BUILTIN_DATASETS,
    DataRef,
    Splits,
    TrainingData,
    load_builtin,
    load_dataset,
    load_file,
    split_data,
)
from keel.training._estimators import build_estimator, describe_estimator
from keel.training._hpo import SearchResult, TrialResult, search
from keel.training._metrics import disparate_impact, evaluate, slice_metrics
from keel.training._quickstart import QUICKSTART_SPACE, QuickstartResult, quickstart_pipeline
from keel.training._reproduce import MetricCheck, Reproduction, reproduce_run
from keel.training._retrain import (
    Decision,
    RetrainingPolicy,
    RetrainOutcome,
    champion_estimator,
    decide,
    retrain,
    retraining_pipeline,
)
from keel.training._space import Param, SearchConfig, SearchSpace, load_search_config
from keel.training._train import (
    TrainResult,
    evaluate_model,
    train_lightgbm,
    train_model,
    train_sklearn,
    train_xgboost,
)

__all__ = [
    "BUILTIN_DATASETS",
    "QUICKSTART_SPACE",
    "DataRef",
    "Decision",
    "MetricCheck",
    "Param",
    "QuickstartResult",
    "Reproduction",
    "RetrainOutcome",
    "RetrainingPolicy",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "Splits",
    "TrainResult",
    "TrainingData",
    "TrialResult",
    "build_estimator",
    "champion_estimator",
    "decide",
    "describe_estimator",
    "disparate_impact",
    "evaluate",
    "evaluate_model",
    "load_builtin",
    "load_dataset",
    "load_file",
    "load_search_config",
    "quickstart_pipeline",
    "reproduce_run",
    "retrain",
    "retraining_pipeline",
    "search",
    "slice_metrics",
    "split_data",
    "train_lightgbm",
    "train_model",
    "train_sklearn",
    "train_xgboost",
]
