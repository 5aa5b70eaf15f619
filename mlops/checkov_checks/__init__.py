"""The project's own checkov checks for the transformed template, loaded with `--external-checks-dir`.

checkov has no CloudFormation checks for what this stack relies on most: state machine logging and tracing,
tags on SageMaker registry resources, customer-managed keys on queues, dead-letter queues and retry policies on
EventBridge targets. checkov imports each module of this folder by its file name; each defines `check`.
"""
