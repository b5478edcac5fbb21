"""The quality benchmark (`dmt bench quality`): DMT against its baselines and ablations on the
synthetic benchmark, the way the DMT paper's Tables 1 and 6 and Figure 5 measure it."""
