"""Ray job: decode videos into Parquet shards with Ray Data (`dmt preprocess`).

    ray job submit --working-dir . -- python jobs/preprocess.py --config jobs/configs/smoke.yaml
    dmt submit preprocess --config jobs/configs/smoke.yaml          # the same, from the CLI

Takes the arguments of `dmt preprocess` (`--config FILE`, repeatable `--set KEY=VALUE`, ...).
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("preprocess"))
