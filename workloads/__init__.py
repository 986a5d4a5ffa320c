"""Built-in workloads. Each registers under the ``bakeoff.workloads`` entry-point group."""
