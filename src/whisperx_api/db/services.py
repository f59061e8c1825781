"""advanced-alchemy services for tasks and speakers."""

from __future__ import annotations

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from whisperx_api.db.models import Speaker, Task


class TaskService(SQLAlchemyAsyncRepositoryService[Task]):
    class Repo(SQLAlchemyAsyncRepository[Task]):
        model_type = Task

    repository_type = Repo


class SpeakerService(SQLAlchemyAsyncRepositoryService[Speaker]):
    class Repo(SQLAlchemyAsyncRepository[Speaker]):
        model_type = Speaker

    repository_type = Repo
