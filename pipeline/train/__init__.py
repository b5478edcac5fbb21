"""Ray Train shell around ``pipeline.dmt``: data, worker loop, checkpoints, MLflow logging."""
