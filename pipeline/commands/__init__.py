"""CLI subcommands: each module defines ``add_arguments(parser)`` and ``run(args) -> int``.

Modules are imported only when their command runs, so ``dmt --help`` and config errors stay fast
and never start Ray or MLflow.
"""
