"""Ray job: sweep delta, tau and the EMA decay with Ray Tune (`dmt tune`).

    ray job submit --working-dir . -- python jobs/tune.py --config jobs/configs/smoke.yaml
    dmt submit tune --config jobs/configs/smoke.yaml          # the same, from the CLI

Takes the arguments of `dmt tune` (`--config FILE`, repeatable `--set KEY=VALUE`, ...).
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("tune"))
