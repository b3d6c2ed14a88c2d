"""The prediction service: FastAPI over `ml.predict.Predictor`, with request models derived from `ml.schema`."""
