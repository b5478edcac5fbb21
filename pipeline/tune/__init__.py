"""`dmt tune`: Ray Tune sweeps whose trials are full DMT runs on Ray Train."""
