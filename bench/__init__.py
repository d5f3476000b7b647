"""``make bench``: load the control plane's production shape and measure it (bench/run.py)."""
