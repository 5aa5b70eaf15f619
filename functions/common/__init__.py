"""Helpers shared by the Lambda functions: settings, observability, idempotency, names, input parsing, training starts.

Each function defines the event models it parses in its own module.
"""
