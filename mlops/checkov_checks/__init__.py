"""The project's own checkov checks for the transformed template, loaded with `--external-checks-dir`.

checkov has no CloudFormation checks for what this stack relies on most: state machine logging and tracing,
tags on SageMaker registry resources, customer-managed keys on queues, dead-letter queues and retry policies on
EventBridge targets, and the least-privilege rules a bank's reviewer reads for: key administration apart from key
use, source conditions on service trust, image pulls pinned to their registry accounts, endpoint invocation
through the VPC endpoint. checkov imports each module of this folder by its file name; each check module defines
`check` (policy_documents.py is their shared reader and defines none). Retention (DeletionPolicy) is tested in
tests/template/test_least_privilege.py instead: checkov hands a check only a resource's Type, Properties and
Metadata.
"""
