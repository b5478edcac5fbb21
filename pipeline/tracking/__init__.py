"""MLflow, and nothing else: the only package of the product that imports mlflow.

The driver creates the run (params, tags, config artifact) and ends it; Train's rank-0 worker logs
metrics and artifacts into that run by id through :class:`RunLogger`. Because Ray Train workers
change directory, the tracking URI is resolved to an absolute one on the driver before any worker
starts, and experiments on a local SQLite store get an absolute artifact folder beside the
database (MLflow's own default, ``./mlruns``, would be relative to each worker's directory).
The final model is logged as an MLflow pyfunc model and can be registered (``model``).
"""

from pipeline.tracking.evaluations import log_evaluation, model_id_of
from pipeline.tracking.lineage import (
    PREPROCESS_RUN_TAG,
    link_preprocess_run,
    log_preprocess,
    preprocess_run_of,
)
from pipeline.tracking.model import (
    MODEL_NAME,
    check_alias,
    log_model,
    register_model,
    run_model_id,
)
from pipeline.tracking.runs import (
    MAX_PARAM_LEN,
    NOTE_TAG,
    PACKAGES,
    RunLogger,
    command_line,
    git_commit,
    job_submission_id,
    package_versions,
    reproducibility_tags,
    run_description,
    start_run,
)
from pipeline.tracking.server import LocalServer
from pipeline.tracking.store import (
    PARENT_TAG,
    SUBMISSION_TAG,
    download_artifacts,
    get_or_create_experiment,
    get_run,
    list_artifacts,
    local_artifact_root,
    metric_history,
    resolve_tracking_uri,
    run_link,
    run_url,
    runs_of_submission,
    search_runs,
    ui_command,
)

__all__ = [
    "MAX_PARAM_LEN", "MODEL_NAME", "NOTE_TAG", "PACKAGES", "PARENT_TAG", "PREPROCESS_RUN_TAG",
    "SUBMISSION_TAG",
    "LocalServer", "RunLogger", "check_alias", "command_line", "download_artifacts",
    "get_or_create_experiment", "get_run", "git_commit", "job_submission_id", "list_artifacts",
    "link_preprocess_run", "local_artifact_root", "log_evaluation", "log_model",
    "log_preprocess", "metric_history", "model_id_of",
    "package_versions", "preprocess_run_of", "register_model",
    "reproducibility_tags", "resolve_tracking_uri", "run_description", "run_link", "run_model_id",
    "run_url", "runs_of_submission",
    "search_runs", "start_run", "ui_command",
]
