"""Helpers shared by every Lambda function: settings, observability, idempotency, names and event models."""
