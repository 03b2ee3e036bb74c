"""Real S3 (SeaweedFS) and MLflow server fixtures; see gglops.stack."""
