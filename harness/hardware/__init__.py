"""What is known about hardware, independent of any run: the catalog (prices, peaks, vendor,
export control), the plausibility check against those peaks, and which dtypes a device runs
natively. The engine, the results and procurement all consult it."""
