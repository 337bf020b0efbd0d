"""Faults: processes killed, Redis restarted, the database cut off, storms."""
