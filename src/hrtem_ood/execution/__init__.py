"""Where the work runs: a training stage's condition grid and its tasks (``grid``), the local worker pool and the
dask fan-out (``parallel``), and a local dask cluster (``cluster``). ``parallel`` decides no output's bytes."""
