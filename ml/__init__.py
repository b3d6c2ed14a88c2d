"""Diabetes status model: schema, data preparation, training, evaluation, tracking and inference."""
