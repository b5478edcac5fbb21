"""Ray job: train DMT with Ray Train, tracked in MLflow (`dmt train`).

    ray job submit --working-dir . -- python jobs/train.py --config jobs/configs/smoke.yaml
    dmt submit train --config jobs/configs/smoke.yaml          # the same, from the CLI

Takes the arguments of `dmt train` (`--config FILE`, repeatable `--set KEY=VALUE`, ...).
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("train"))
