"""The task lifecycle, with one owner: every path that creates or runs a task (the queued
endpoints and their job, the synchronous /v1 requests, speaker enrolment) goes through submit()
and execute(); deleting a task, recovering after a restart and draining at shutdown live here
too. Nothing else writes task rows, takes admission slots or keeps a task's media.

submit(): check admission, store the media, insert the row, then enqueue (or leave it to the
caller to execute inline); a failure undoes what was done, in reverse, and a dependency that is
down is a 503 DEPENDENCY_UNAVAILABLE.
execute(): mark processing, run the work, close the row (completed or failed, with a code),
delete the media, release the slot, post the callback. Every way out ends the row in a final
state: a pipeline error, a bug, a client gone (CLIENT_DISCONNECTED), a shutdown
(SERVICE_SHUTTING_DOWN; a queued task goes back to the queue instead), a time-out, a deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import msgspec
from saq import Job

from whisperx_api.db.models import ACTIVE_STATUSES, INLINE_TYPES, Task, TaskStatus, TaskType
from whisperx_api.errors import ApiError
from whisperx_api.jobs.queue import enqueue, forget_job, job_is_live
from whisperx_api.media.intake import FetchMedia, StoredMedia
from whisperx_api.media.storage import MediaStore
from whisperx_api.outages import unavailable
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.progress import Progress
from whisperx_api.pipeline.results import Diarized, Segment, Transcript
from whisperx_api.runtime import Runtime
from whisperx_api.security.admission import RETRY_AFTER_S, dependency_error, overloaded
from whisperx_api.speaker_library.naming import linked_speaker, rename
from whisperx_api.tasks.events import SegmentEvent, TaskEvent
from whisperx_api.tasks.reads import TaskReader
from whisperx_api.transcription.callbacks import deliver_callback
from whisperx_api.transcription.params import TaskParams, decode_params, encode_params
from whisperx_api.transcription.rows import TaskRows
from whisperx_api.transcription.work import PERFORM, Result, Work, facts

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROGRESS_INTERVAL_S = 1.0
# how long a finished task's last decoded segments may take to reach its events before the
# final state is written anyway (publishing is best effort: Redis may be down)
SEGMENTS_FLUSH_S = 5.0
INTERRUPTED = "interrupted"
INLINE_STALE_AFTER_S = 3600
# a deleted task's last event ("deleted") is kept this long, for its followers to see
DELETED_EVENTS_KEPT_S = 600
STATE_FIELDS = ("status", "stage", "progress", "error_code", "error_message")
# a queued task's start and a finished task's final write, while the database is down: retried
# after this long, doubled up to the longest
DATABASE_FIRST_RETRY_S = 0.5
DATABASE_LONGEST_RETRY_S = 15.0
# what a pipeline error code means to the client who asked (422 or, on /v1, 400; else 500)
CLIENT_ERRORS = frozenset(
    {
        "AUDIO_PROCESSING_ERROR", "INVALID_LANGUAGE_CODE", "TRANSLATION_UNSUPPORTED", "MODEL_NOT_FOUND",
        "NO_SPEECH", "ALIGN_MODEL_UNAVAILABLE", "EMBEDDING_DIMENSION_MISMATCH", "INVALID_EMBEDDING",
        "KNOWN_SPEAKER_NOT_FOUND", "KNOWN_SPEAKER_REFERENCE_UNUSABLE",
    }
)  # fmt: skip
# the request field a client error is about (else the media file)
ERROR_PARAMS = {
    "KNOWN_SPEAKER_NOT_FOUND": "known_speaker_names[]", "KNOWN_SPEAKER_REFERENCE_UNUSABLE": "known_speaker_references[]",
}  # fmt: skip


@dataclass(frozen=True)
class Submission:
    task_type: TaskType
    params: TaskParams
    fetch: FetchMedia | None = None
    url: str | None = None
    callback_url: str | None = None
    language: str | None = None

    @property
    def inline(self) -> bool:
        """Run within the request (the caller calls execute) instead of by a queue worker."""
        return self.task_type in INLINE_TYPES


@dataclass(frozen=True)
class Outcome:
    task_id: UUID
    status: TaskStatus
    result: Result | None = None
    error_code: str | None = None
    error_message: str | None = None

    def raise_for_client(self, client_error_status: int = 422) -> Result:
        """The result, or the failure as the error a client of the request gets."""
        if self.status == TaskStatus.COMPLETED and self.result is not None:
            return self.result
        code, message = self.error_code or "INTERNAL_ERROR", self.error_message or "the task failed"
        if code == "SERVICE_SHUTTING_DOWN":
            raise ApiError(503, message, code, headers={"Retry-After": str(RETRY_AFTER_S)})
        status = client_error_status if code in CLIENT_ERRORS else 500
        param = ERROR_PARAMS.get(code, "file")
        raise ApiError(status, message if status != 500 else f"transcription failed: {message}", code, param)


@dataclass
class Running:
    """An execution in this process, and why it is being stopped (None: nobody stops it)."""

    task: asyncio.Task[Any] | None
    inline: bool
    reason: str | None = None
    # the work is over and its final state is being written: nothing is left to stop, and a
    # cancel now would interrupt that write and leave the row processing
    closing: bool = False
    progress: Progress = field(default_factory=Progress)
    # segments decoded and not yet published as events (appended on the inference reader thread)
    segments: deque[Segment] = field(default_factory=deque)


def _state_event(values: dict[str, Any]) -> TaskEvent:
    return TaskEvent(type="state", **{name: values[name] for name in STATE_FIELDS if name in values})


def _final_event(values: dict[str, Any]) -> TaskEvent:
    return TaskEvent(type="done", **{name: values[name] for name in STATE_FIELDS if name in values})


def _segment_event(segment: Segment) -> TaskEvent:
    return TaskEvent(
        type="segment", segment=SegmentEvent(start=segment.start or 0.0, end=segment.end or 0.0, text=segment.text)
    )


class TranscriptionService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.reads = TaskReader(runtime.reads)  # tasks as GET /task shows them (also the callback's body)
        self.rows = TaskRows(runtime.db, counted=self.reads.forget_totals)
        self.events = runtime.events
        self.draining = False
        self._running: dict[UUID, Running] = {}

    @property
    def media(self) -> MediaStore:
        """Where tasks' media are stored (submit() fetches into it)."""
        return self.runtime.media

    # -- submit ---------------------------------------------------------------------------
    async def submit(self, submission: Submission) -> UUID:
        """A new task: queued (its job enqueued), or processing for the caller to execute()."""
        if self.draining:
            raise ApiError(
                503, "the service is shutting down; retry on another instance or in a moment", "SERVICE_SHUTTING_DOWN",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
        runtime = self.runtime
        task_id = uuid4()
        kind: Literal["sync", "async"] = "sync" if submission.inline else "async"
        undo: list[Callable[[], Any]] = []
        try:
            if not await runtime.admission.acquire(kind, str(task_id)):
                raise overloaded(kind)
            undo.append(lambda: runtime.admission.release(kind, str(task_id)))
            media: StoredMedia | None = None
            if submission.fetch is not None:
                media = await submission.fetch(task_id)
                stored = media.path
                undo.append(lambda: runtime.media.delete(stored))
            await self.rows.insert(
                id=task_id, task_type=submission.task_type.value, params=encode_params(submission.params),
                status=(TaskStatus.PROCESSING if submission.inline else TaskStatus.QUEUED).value,
                attempts=1 if submission.inline else 0,
                started_at=datetime.now(UTC) if submission.inline else None,
                media_path=str(media.path) if media else None, file_name=media.file_name if media else None,
                audio_duration=media.info.duration if media else None, url=submission.url,
                callback_url=submission.callback_url, language=submission.language,
            )  # fmt: skip
            undo.append(lambda: self.rows.delete(task_id))
            if submission.inline:
                self._running[task_id] = Running(None, inline=True)
            else:
                await enqueue(runtime.queue, task_id, self.settings)
        except BaseException as exc:
            for step in reversed(undo):
                try:
                    outcome = step()
                    if asyncio.iscoroutine(outcome):
                        await outcome
                except Exception:  # the dependency that failed may fail the undo too; its own expiry frees it
                    logger.warning("could not undo a step of submitting task %s", task_id, exc_info=True)
            error = dependency_error(exc)
            if error is not None:
                raise error from exc
            raise
        return task_id

    # -- execute --------------------------------------------------------------------------
    async def execute(
        self, task_id: UUID, *, job: Job | None = None, on_segment: Callable[[Segment], None] | None = None
    ) -> Outcome:
        """Run a task to its final state. With `job` it is a queued task run by the queue worker
        (a shutdown puts it back on the queue); without, an inline task the caller submitted."""
        if job is None:
            return await self._execute(task_id, None, on_segment)
        async with self._heartbeat(task_id, job):
            return await self._execute(task_id, job, on_segment)

    async def _execute(
        self, task_id: UUID, job: Job | None, on_segment: Callable[[Segment], None] | None
    ) -> Outcome:  # fmt: skip
        # a queued task waits for a database that is down rather than fail its job: SAQ would
        # spend every retry in a moment, leaving the row for the next reconcile
        task = await (
            self.rows.get(task_id) if job is None
            else self._while_database_down(task_id, "start", lambda: self.rows.get(task_id))
        )  # fmt: skip
        if task is None or task.status not in ACTIVE_STATUSES:
            if job is not None:  # deleted, or finished by an earlier attempt
                await self._release(task_id, inline=False)
            return Outcome(task_id, TaskStatus(task.status) if task else TaskStatus.FAILED, error_code="SKIPPED")
        if job is not None and task_id in self._running:
            # delivered again while this process runs it (a Redis that restarted from its
            # append-only file without the latest writes queues an active job once more): one run
            logger.warning("task %s: delivered again while it runs here; not run twice", task_id)
            return Outcome(task_id, TaskStatus(task.status), error_code="SKIPPED")
        inline = job is None
        running = self._running.setdefault(task_id, Running(None, inline=inline))
        running.task = asyncio.current_task()
        started = time.monotonic()
        try:
            if not inline:
                attempts = task.attempts + 1
                if attempts > self.settings.job_max_attempts:
                    return await self._fail_interrupted(task_id, task.attempts)
                await self._while_database_down(task_id, "start", lambda: self._record(
                    task_id, status=TaskStatus.PROCESSING.value, attempts=attempts, started_at=datetime.now(UTC),
                    stage="starting", progress=0.0,
                ))  # fmt: skip
            logger.info(
                "task %s (%s): running, attempt %d", task_id, task.task_type, task.attempts + (0 if inline else 1)
            )
            return await self._run(task, running, job, on_segment, started)
        finally:
            self._running.pop(task_id, None)

    async def _run(
        self, task: Task, running: Running, job: Job | None, on_segment: Callable[[Segment], None] | None,
        started: float,
    ) -> Outcome:  # fmt: skip
        task_id, inline = task.id, job is None
        stop_reporting, work_done, flushed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        reporter = asyncio.create_task(self._report_progress(task_id, running, stop_reporting, work_done, flushed))

        def segment_decoded(segment: Segment) -> None:  # on the inference process's reader thread
            running.segments.append(segment)
            if on_segment is not None:
                on_segment(segment)

        work = Work(
            task_id=task_id, task_type=TaskType(task.task_type), params=decode_params(task.params),
            media_path=Path(task.media_path) if task.media_path else None, engine=self.runtime.engine,
            library=self.runtime.speakers, progress=running.progress, on_segment=segment_decoded,
            voice_samples=self.runtime.voice_samples if self.settings.keep_voice_samples else None,
        )  # fmt: skip
        outcome: Outcome
        try:
            result = await PERFORM[work.task_type](work)
            outcome = Outcome(task_id, TaskStatus.COMPLETED, result=result)
        except asyncio.CancelledError:
            stop_reporting.set()
            reason = running.reason
            if reason == "deleted":
                raise  # delete() has removed the row and will clean up
            if not inline:
                # back on the queue: SAQ re-queues the job after a shutdown (not counted as an
                # attempt), a time-out or the sweep (counted; past JOB_MAX_ATTEMPTS: interrupted)
                values: dict[str, Any] = {"status": TaskStatus.QUEUED.value, "stage": "requeued"}
                if self.draining:
                    values["attempts"] = task.attempts
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._record(task_id, **values))
                logger.info(
                    "task %s: back on the queue (%s)", task_id, "shutting down" if self.draining else "cancelled"
                )
                raise
            code, message = {
                "client_disconnected": (
                    "CLIENT_DISCONNECTED",
                    "the client closed the connection before the task finished",
                ),
                "shutting_down": ("SERVICE_SHUTTING_DOWN", "the service shut down before the task finished"),
            }.get(reason or "", ("CANCELLED", "the task was cancelled"))
            outcome = Outcome(task_id, TaskStatus.FAILED, error_code=code, error_message=message)
            await asyncio.shield(self._close(task, outcome, started))
            return outcome
        except PipelineError as exc:
            outcome = Outcome(task_id, TaskStatus.FAILED, error_code=exc.code, error_message=exc.message)
        except Exception as exc:
            logger.exception("task %s failed", task_id)
            outcome = Outcome(
                task_id, TaskStatus.FAILED, error_code="INTERNAL_ERROR", error_message=str(exc) or type(exc).__name__
            )
        finally:
            work_done.set()  # no more progress rows (the job's heartbeat goes on: execute's)
        running.closing = True
        try:
            # shielded: a job cancel (delete, shutdown) arriving now still lets the final state land
            await asyncio.shield(self._close_after_segments(task, outcome, started, flushed))
        finally:
            stop_reporting.set()
            with contextlib.suppress(Exception):
                await reporter
        return outcome

    async def _close_after_segments(self, task: Task, outcome: Outcome, started: float, flushed: asyncio.Event) -> None:
        """The segments decoded last reach the task's events before its `done` (a short file's
        segments all come in the last moment of its work), then the row is closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flushed.wait(), SEGMENTS_FLUSH_S)
        await self._close(task, outcome, started)

    async def _close(self, task: Task, outcome: Outcome, started: float) -> None:
        """The final state into the row (retried while the database is down: the result is not
        thrown away), then the media, the slot and the callback."""
        values: dict[str, Any] = {
            "status": outcome.status.value, "finished_at": datetime.now(UTC),
            "processing_duration": round(time.monotonic() - started, 3),
        }  # fmt: skip
        completed = outcome.status == TaskStatus.COMPLETED
        if completed:
            values.update(result=outcome.result, progress=1.0, stage="done", **facts(outcome.result))
        else:
            values.update(error_code=outcome.error_code, error_message=outcome.error_message)
        # a completed task's media stays MEDIA_RETENTION_H hours for playback (expire_media)
        keep_media = completed and self.settings.media_retention_h > 0
        if not keep_media:
            values["media_path"] = None
        await self._write_final(task.id, values)
        self._delete_files(task, keep_media=keep_media)
        await self._release(task.id, inline=task.task_type in INLINE_TYPES)
        if task.callback_url:
            closed = await self.reads.get(task.id)
            if closed is not None:
                await deliver_callback(self.settings, closed)

    def _delete_files(self, task: Task, *, keep_media: bool) -> None:
        """A closed task's files (after its final state is written: a crash between the two
        leaves a file, never a task to retry without its files): its media, unless kept for
        playback, and a /v1 request's known-speaker reference recordings, which no row's
        media_path names and which live as long as their request. The one place a task's files
        are deleted (a refused request's, before its task exists, go in its controller; kept media
        past MEDIA_RETENTION_H in expire_media)."""
        if not keep_media:
            self.runtime.media.delete(task.media_path)
        for speaker in decode_params(task.params).known_speakers or []:
            self.runtime.media.delete(speaker.reference)

    async def _write_final(self, task_id: UUID, values: dict[str, Any]) -> None:
        # a queued task's job heartbeat goes on meanwhile (execute's, until the row is closed)
        await self._while_database_down(task_id, "final state", lambda: self.rows.update(task_id, **values))
        await self._publish(task_id, _final_event(values))

    async def _while_database_down(self, task_id: UUID, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """`step`, retried while the database is down (a task's result or its attempt is not
        thrown away for an outage); any other error is raised."""
        delay = DATABASE_FIRST_RETRY_S
        while True:
            try:
                return await step()
            except Exception as exc:
                if unavailable(exc) != "database":
                    raise
                logger.warning(
                    "task %s: the database is unavailable for its %s; retrying in %.1fs", task_id, what, delay
                )
            await asyncio.sleep(delay)
            delay = min(DATABASE_LONGEST_RETRY_S, delay * 2)

    async def _record(self, task_id: UUID, **values: Any) -> None:
        """A change of a running task: into its row, then to whoever follows its events."""
        await self.rows.update(task_id, **values)
        await self._publish(task_id, _state_event(values))

    async def _publish(self, task_id: UUID, event: TaskEvent, **options: Any) -> None:
        try:
            await self.events.publish(task_id, event, **options)
        except Exception as exc:  # events are best effort: followers fall back on the row
            logger.debug("task %s: event not published (%s)", task_id, exc)

    async def _release(self, task_id: UUID, *, inline: bool) -> None:
        with contextlib.suppress(Exception):  # Redis down: the slot expires on its own
            await self.runtime.admission.release("sync" if inline else "async", str(task_id))

    async def _report_progress(
        self, task_id: UUID, running: Running, stop: asyncio.Event, work_done: asyncio.Event, flushed: asyncio.Event
    ) -> None:
        """Copy progress to the row (and the task's events, with the segments decoded since)
        while the work runs; once it is done, publish the segments still pending and set
        `flushed` (the final state waits for them).

        It is stopped with `stop`, never cancelled: cancelling it in the middle of a database or
        Redis write can leave that connection unusable for the writes that follow.
        """
        seen, missed = 0, 0  # missed: writes failed in a row (a dependency down: logged once, not each second)
        while not stop.is_set():
            if not work_done.is_set():  # woken at once when the work ends, to flush its segments
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(work_done.wait(), PROGRESS_INTERVAL_S)
            elif flushed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PROGRESS_INTERVAL_S)
            if stop.is_set():
                return
            done = work_done.is_set()
            version, stage, fraction = running.progress.snapshot()
            try:
                while running.segments:
                    await self._publish(task_id, _segment_event(running.segments.popleft()))
                if version != seen and not done:
                    seen = version
                    await self._record(task_id, stage=stage, progress=round(fraction, 4))
                    if missed:
                        logger.info("task %s: progress recorded again, after %d failed write(s)", task_id, missed)
                        missed = 0
            except Exception as exc:  # progress is best effort: a dependency blip must not fail the work
                missed += 1
                if missed == 1:
                    logger.warning(
                        "task %s: progress not recorded (%s); no more of this until a write succeeds", task_id, exc
                    )
            finally:
                if done:
                    flushed.set()

    @contextlib.asynccontextmanager
    async def _heartbeat(self, task_id: UUID, job: Job) -> AsyncIterator[None]:
        """Touch a queued task's job (with its work's progress) for as long as its execution
        runs: neither a start or final write that waits for the database, nor the work, may look
        like a dead worker to the sweep, which would abort the job and throw the work away. A
        loop of its own: the rows' writes fail or hang while the database is down, and must not
        hold the heartbeat up. The only place a job is touched."""
        stop = asyncio.Event()
        # three times per heartbeat, so one late touch is not taken for death
        every = max(0.5, self.settings.job_heartbeat_s / 3)

        async def touch() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
                if stop.is_set():
                    return
                running = self._running.get(task_id)
                try:
                    await job.update(progress=running.progress.snapshot()[2] if running else 0.0)
                except Exception as exc:  # Redis down: the sweep cannot run either
                    logger.debug("task %s: job not touched (%s)", task_id, exc)

        # stopped with `stop`, never cancelled: a cancel in the middle of a Redis write can leave
        # that connection unusable for the writes that follow
        beat = asyncio.create_task(touch())
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await beat

    async def _fail_interrupted(self, task_id: UUID, attempts: int) -> Outcome:
        """Fail a task whose process died under it; its files go as a failed task's do (_close)."""
        outcome = Outcome(
            task_id, TaskStatus.FAILED, error_code=INTERRUPTED,
            error_message=f"interrupted: the worker stopped or crashed during {attempts} attempt(s)",
        )  # fmt: skip
        values: dict[str, Any] = {
            "status": outcome.status.value, "error_code": outcome.error_code, "error_message": outcome.error_message,
            "finished_at": datetime.now(UTC), "media_path": None,
        }  # fmt: skip
        task = await self.rows.get(task_id)
        await self.rows.update(task_id, **values)
        if task is not None:
            self._delete_files(task, keep_media=False)
        await self._publish(task_id, _final_event(values))
        await self._release(task_id, inline=False)
        return outcome

    # -- inline ----------------------------------------------------------------------------
    async def run_inline(self, task_id: UUID, on_segment: Callable[[Segment], None] | None = None) -> Outcome:
        """Execute a submitted inline task on a task of its own: if the caller is cancelled (its
        client went away), the execution is stopped and the row closed as CLIENT_DISCONNECTED."""
        execution = asyncio.ensure_future(self.execute(task_id, on_segment=on_segment))
        try:
            return await asyncio.shield(execution)
        except asyncio.CancelledError:
            logger.info("task %s: the client went away; stopping its work", task_id)
            self.stop(task_id, "client_disconnected")
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(execution), 10)
            raise

    def stop(self, task_id: UUID, reason: str) -> bool:
        """Stop an execution running in this process (reason: client_disconnected, shutting_down,
        deleted)."""
        running = self._running.get(task_id)
        if running is None or running.task is None or running.task.done() or running.closing:
            return False
        running.reason = running.reason or reason
        running.task.cancel()
        return True

    # -- delete ---------------------------------------------------------------------------
    async def delete(self, task_id: UUID) -> Task | None:
        """Remove a task: stop its work (abort its job), delete the row, its media and its slot."""
        task = await self.rows.get(task_id)
        if task is None:
            return None
        if task.status in ACTIVE_STATUSES:
            self.stop(task_id, "deleted")
            if task.task_type not in INLINE_TYPES:
                job = await self.runtime.queue.job(str(task_id))
                if job is not None:
                    await self.runtime.queue.abort(job, error="task deleted")
        await self.rows.delete(task_id)
        self._delete_files(task, keep_media=False)
        await self._release(task_id, inline=task.task_type in INLINE_TYPES)
        await self._publish(task_id, TaskEvent(type="deleted"), keep_s=DELETED_EVENTS_KEPT_S)
        return task

    # -- kept media ---------------------------------------------------------------------------
    async def expire_media(self) -> int:
        """Delete the media of tasks that ended more than MEDIA_RETENTION_H hours ago."""
        cutoff = datetime.now(UTC) - timedelta(hours=self.settings.media_retention_h)
        expired = await self.rows.with_media_before(cutoff)
        for task_id, path in expired:
            await self.rows.update(task_id, media_path=None)
            self.runtime.media.delete(path)
        if expired:
            logger.info("deleted the media of %d task(s) past MEDIA_RETENTION_H", len(expired))
        return len(expired)

    # -- a finished transcript's speakers -------------------------------------------------------
    async def rename_speaker(self, task_id: UUID, name: str, new: str) -> tuple[Task, UUID | None] | None:
        """Call a speaker of a completed task `new`: in its result and, when the voice is in the
        speaker library (identified or stored by this task), in the library, so later recordings
        of the voice get the name. Returns the task and the library entry renamed (None: none)."""
        task = await self.rows.get(task_id)
        if task is None:
            return None
        if task.status != TaskStatus.COMPLETED.value:
            raise ApiError(409, f"task {task_id} is {task.status}; only a completed task's speakers can be renamed",
                           "TASK_NOT_COMPLETED", "identifier")  # fmt: skip
        result: Transcript | Diarized = (
            msgspec.convert(task.result, Diarized)
            if task.task_type == TaskType.DIARIZATION.value
            else msgspec.convert(task.result, Transcript)
        )
        speakers = sorted({s.speaker for s in result.segments if s.speaker})
        if name not in speakers:
            raise ApiError(404, f"task {task_id} has no speaker {name!r}; its speakers: {', '.join(speakers) or 'none'}",
                           "SPEAKER_NOT_FOUND", "speaker")  # fmt: skip
        if new != name and new in speakers:
            raise ApiError(409, f"another speaker of this transcript is already called {new!r}; "
                           "two voices would share one name", "SPEAKER_NAME_TAKEN", "name")  # fmt: skip
        linked = linked_speaker(result, name)
        if linked is not None and await self.runtime.speakers.update(linked, {"label": new}) is None:
            linked = None  # deleted from the library since
        rename(result, name, new)
        await self.rows.update(task_id, result=result)
        renamed = await self.rows.get(task_id)
        assert renamed is not None
        return renamed, linked

    # -- after a restart --------------------------------------------------------------------
    async def reconcile(self, *, at_start: bool = True) -> dict[str, int]:
        """Re-queue (within JOB_MAX_ATTEMPTS) or fail the tasks whose job is gone.

        A task left queued/processing after a crash either still has a live job (the sweep will
        retry it if its worker died) or has none (Redis lost it, or the job ended without
        closing the row): those are queued again, or failed as `interrupted` when they have used
        up their attempts. At start, an inline task left processing long ago is failed too: its
        client is gone once its process died. Run at a worker's start and then every few minutes
        (a Redis that came back may have lost the last second of jobs); tasks running in this
        process are left alone.
        """
        counts = {"requeued": 0, "failed": 0, "alive": 0}
        queue = self.runtime.queue
        stale = datetime.now(UTC) - timedelta(seconds=INLINE_STALE_AFTER_S)
        for task_id, attempts, started_at in await self.rows.active(synchronous=True) if at_start else []:
            if started_at is not None and started_at < stale and task_id not in self._running:
                await self._fail_interrupted(task_id, attempts)
                counts["failed"] += 1
        for task_id, attempts, _ in await self.rows.active(synchronous=False):
            if task_id in self._running:
                counts["alive"] += 1
                continue
            job = await queue.job(str(task_id))
            if job is not None and await job_is_live(queue, job):
                counts["alive"] += 1
                continue
            if job is not None:
                await forget_job(queue, job)
            if attempts < self.settings.job_max_attempts:
                await self._record(task_id, status=TaskStatus.QUEUED.value, stage="requeued")
                await enqueue(queue, task_id, self.settings)
                counts["requeued"] += 1
            else:
                await self._fail_interrupted(task_id, attempts)
                counts["failed"] += 1
        if any(counts.values()):
            logger.info("reconciled unfinished tasks: %s", counts)
        return counts

    # -- shutdown -------------------------------------------------------------------------
    async def drain_inline(self, grace_s: float) -> None:
        """Stop taking new work; give inline executions `grace_s` to finish, then stop them
        (their rows end SERVICE_SHUTTING_DOWN and their clients get a 503)."""
        self.draining = True
        inline = [r.task for r in self._running.values() if r.inline and r.task is not None]
        if inline:
            await asyncio.wait(inline, timeout=grace_s)
        for task_id, running in list(self._running.items()):
            if running.inline:
                self.stop(task_id, "shutting_down")
        remaining = [r.task for r in self._running.values() if r.inline and r.task is not None]
        if remaining:
            await asyncio.wait(remaining, timeout=10)
