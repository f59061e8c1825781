"""The SAQ job queue on Redis: the queue with its safe sweep, enqueueing a task, whether a job
is still alive, and running a worker. It carries task ids only; the database holds the tasks."""
