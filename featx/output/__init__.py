"""The output side: sinks (csv, npy, npy-dir, in memory), the npy-dir file
names (:mod:`.layout`), their state, lock, commits, merge, and the one
atomic-write helper.  Nothing here imports :mod:`featx.engine`."""
