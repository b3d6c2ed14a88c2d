"""Routes, one module per concern: prediction, probes, model information, metrics."""
