"""The numeric precisions a trial may ask a backend for (no torch import: config validation reads it)."""

PRECISIONS = ("fp32", "bf16", "int8")
