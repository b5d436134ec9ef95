"""Widgets of the glibc-doctor app; each renders core records handed down by its screen."""
