"""The training engine without Ray: what every trainer shares, in plain PyTorch and pyarrow.

- ``loop``: seeding, the stages (``stage_of``, ``total_epochs``), ``run_epoch``, progress;
- ``schedule``: the learning rate over a run (``optim.schedule``: constant or cosine);
- ``batches``: shard rows -> model batches (``ToTrainingBatch``), tensors on a device;
- ``evaluation``: scores of a state on batches, with the trivial predictors;
- ``checkpoint``: the ``state.pt`` format (``torch.load(weights_only=True)``);
- ``offline``: load a checkpoint, evaluate it on a split of the shards;
- ``heatmaps``: PNG overlays of maps on frames;
- ``report``: the result tables printed on the terminal.

The algorithm is ``pipeline.dmt`` (steps) and ``pipeline.models`` (networks); the Ray Train
shell is ``pipeline.train``, the MLflow shell ``pipeline.tracking``. Nothing here imports Ray.
"""
