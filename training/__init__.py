"""Training stage: point-in-time training sets, the three model families, evaluation, MLflow registry."""
