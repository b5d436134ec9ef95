"""Screens of the glibc-doctor app; each owns its widgets and the workers whose results it shows."""
