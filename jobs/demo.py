"""Ray job: the main job (`dmt demo`): synth if the data is missing, preprocess, train, evaluate.

    ray job submit --working-dir . -- python jobs/demo.py --config jobs/configs/smoke.yaml
    dmt submit demo --config jobs/configs/smoke.yaml          # the same, from the CLI

Takes the arguments of `dmt demo` (`--config FILE`, repeatable `--set KEY=VALUE`, ...).
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("demo"))
