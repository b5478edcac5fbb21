"""One typed config tree for a whole run, loaded from YAML and overridden with dotted keys.

Every leaf has a dotted key (``dmt.ema_decay``); the same flat keys are used by the CLI's
``--set``, by Tune's search space and by the MLflow params. Validation happens here, before any
Ray or MLflow work starts, and every error names the key and what it accepts.
"""

from __future__ import annotations

from pipeline.config.files import CONFIG_DIR, find_config, pyyaml  # noqa: F401 (re-exported)
from pipeline.config.paths import (  # noqa: F401 (re-exported)
    PATH_KEYS,
    DataPaths,
    data_paths,
    resolve_paths,
    storage_dir,
)
from pipeline.config.schema import (  # noqa: F401  (re-exported: the package's API)
    AUDIO_BACKBONES,
    BENCH_METHODS,
    BENCH_TABLES,
    EVAL_MODELS,
    METHODS,
    VISUAL_BACKBONES,
    BenchConfig,
    Config,
    ConfigError,
    DataConfig,
    DMTConfig,
    ModelConfig,
    OptimConfig,
    SynthConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
)
from pipeline.config.tree import (  # noqa: F401  (re-exported: the package's API)
    BenchLists,
    bench_lists,
    describe_keys,
    dump_yaml,
    flatten,
    from_dict,
    from_flat,
    label_selector,
    load,
    parse_override,
    set_key,
    to_dict,
)
