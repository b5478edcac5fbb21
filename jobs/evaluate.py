"""Ray job: evaluate a checkpoint on preprocessed shards (`dmt evaluate`).

    ray job submit --working-dir . -- python jobs/evaluate.py \\
        --checkpoint /data/ray_results/demo-0123456789ab --config jobs/configs/demo.yaml \\
        --set data.root=/data/demo --out /data/eval.json

Takes the arguments of `dmt evaluate`; `--data` may be left out when `--config` (and any
`--set KEY=VALUE`) is given: the config's shards folder (``data.shards``, default ROOT/shards).
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("evaluate"))
