"""Ray job: evaluate a checkpoint on preprocessed shards (`dmt evaluate`).

    ray job submit --working-dir . -- python jobs/evaluate.py \\
        --checkpoint /data/ray_results/demo-0123456789ab --config jobs/configs/demo.yaml \\
        --set data.root=/data/demo --out /data/eval.json

Takes the arguments of `dmt evaluate`; `--data` may be left out when `--config` (and any
`--set KEY=VALUE`) is given: the config's shards folder (``data.shards``, default ROOT/shards).
"""

import sys

from _entry import main


def extend(parser):
    for action in parser._actions:  # --data becomes optional: --config can name the shards
        if action.dest == "data":
            action.required = False
    parser.add_argument("--config", help="config whose data.shards is the default --data")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a dotted key; repeatable")


def prepare(args):
    from pipeline import config as config_mod

    if args.config or args.overrides:
        cfg = config_mod.load(args.config, args.overrides)  # ConfigError: exit 2
        if not args.data:
            args.data = str(config_mod.data_paths(cfg.data).shards)
    if not args.data:
        raise config_mod.ConfigError("--data: give the shards folder, or --config/--set whose "
                                     "data.shards (default ROOT/shards) names it")


if __name__ == "__main__":
    sys.exit(main("evaluate", extend=extend, prepare=prepare))
