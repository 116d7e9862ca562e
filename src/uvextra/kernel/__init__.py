"""The kernel side: the session behind %uvextra, stale imports, restart, the notebook record, the hub."""
