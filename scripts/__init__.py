"""Operator scripts run from a checkout (``make cluster``)."""
