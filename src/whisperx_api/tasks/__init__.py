"""The task read model: how a task is shown (schemas) and read (reads)."""
