"""The prediction service: FastAPI over `ml.inference.predictor.Predictor`, speaking `ml.contract`."""
