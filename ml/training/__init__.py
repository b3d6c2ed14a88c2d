"""What only training needs: data validation and splits, synthetic data, the download, training, tuning,
evaluation, writing the artifact and MLflow tracking. Never imported by the service."""
