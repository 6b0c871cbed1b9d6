"""Kernel services handed to plugins (scheduler, approvals, audit), persisted in the database."""
