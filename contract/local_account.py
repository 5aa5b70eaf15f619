"""The account and region the local twin stands in for: moto's default account, the region every twin client uses."""

from __future__ import annotations

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
