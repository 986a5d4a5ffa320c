"""Telemetry beside each benchmark: energy meters, memory, utilisation, fingerprints.

Meters are pluggable and each one either reads real joules or says why it
cannot. Energy is never reported as zero when nothing was measured: with no
working meter the record's ``energy.joules`` is ``null`` and ``energy.reason``
lists every meter's reason.
"""

from harness.engine.telemetry.meters import (
    EnergyReading,
    Meter,
    NpuSmiMeter,
    NvmlMeter,
    PowerIntegrator,
    RaplMeter,
    measure_energy,
)

__all__ = ["EnergyReading", "Meter", "NpuSmiMeter", "NvmlMeter", "PowerIntegrator", "RaplMeter",
           "measure_energy"]
