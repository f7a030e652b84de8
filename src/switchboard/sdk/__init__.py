"""The client SDK: ``VideoClient``, ``Call``, observable state and the coordinator connection."""
