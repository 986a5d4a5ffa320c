"""The engine: one benchmark, measured. The runner owns the loop and the clock; timing,
scenarios, telemetry (meters, interference, host facts, fingerprint), generation metrics,
parity, statistics, the frozen spec and the plugin registry serve it."""
