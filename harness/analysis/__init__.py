"""Pure functions of numbers: statistics of latency samples (summaries, order-statistic
intervals, stability checks) and token metrics from per-token timestamps. The engine,
the results and procurement all use them; they import nothing else of harness."""
