"""The output side: sinks (csv, npy, npy-dir), their state, lock, merge, and
the one atomic-write helper."""
