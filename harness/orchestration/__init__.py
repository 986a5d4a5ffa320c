"""Orchestration: from a request (CLI, TOML config or Python API alike: ``session``) to a
run folder of records. ``sweep`` plans and runs the one sweep loop, ``launchers`` isolate each
benchmark (inline, a worker process, Ray: ``fleet``), ``config`` reads sweep files."""
