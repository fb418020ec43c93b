"""Water analytics: QC flags, QCVN compliance, multivariate event detection and alert state machines."""
