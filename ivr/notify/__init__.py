"""Telling the owner: the notifier, its outbox of rows, sending, the texts."""
