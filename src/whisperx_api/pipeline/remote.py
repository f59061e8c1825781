"""The speech engine in a child process, called from the web process's event loop.

Inference is mostly C++ that releases the GIL, but the Python between the model calls (VAD
windows, decoding loops, diarization windows) holds it, at the inference threads' low priority,
on cores the models keep busy. In the web process that Python competed with the event loop for
the GIL: under the 500-client abuse flood the slowest /health probe during a transcription took
124-878 ms; with the pipeline in a child process 16-109 ms (tests/bench/abuse.py, README). So
every process that serves or runs tasks keeps its SpeechEngine (models, cache, compute limit,
inference threads) in one child process of its own, started on first use (a worker starts it
during its warm-up), and talks to it over a pipe. The web process never imports torch.
Messages:

    parent -> child   ("call", id, config, method, args, kwargs)   callables in args become slots
                      ("cancel", id)   its caller went away (a client gone, a job aborted)
    child -> parent   ("event", id, slot, args)   a progress/segment callback fired in the child
                      ("done", id, result) | ("error", id, exception) | ("ready",)
                      ("grown", resident, lowest)   idle, and resting INFERENCE_RECYCLE_GROWTH_MB
                                                    or more above its lowest rest (rest_watch.py)

A cancelled call stops at its next callback (progress comes with every batch of windows), or
does not start: its work would only be thrown away, on cores and a compute slot the next call
needs.

A child that dies (killed, out of memory, a crash in native code) fails the calls it was running
with INFERENCE_PROCESS_EXITED; the web process stays up and the next call starts a new child. A
child whose rest has grown is replaced while no call is in flight (between two calls, so also
between the two calls of a task that runs its pipeline and then embeds its known speakers): the
parent stops it and starts the next one at once, whose models load on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.util import Finalize
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperx_api.logging_setup import setup_logging
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.options import PipelineOptions
from whisperx_api.pipeline.progress import ProgressCallback
from whisperx_api.pipeline.results import Diarized, Segment, Transcript, Turn

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from whisperx_api.pipeline.options import EngineConfig, Enrolment

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 300  # importing torch, whisperx and pyannote on a slow disk


@dataclass(frozen=True)
class _Slot:
    """Stands in, inside the child, for a callable argument that stays in the parent."""

    index: int


@dataclass
class _Call:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    callbacks: list[Callable[..., None]] = field(default_factory=list)
    process: SpawnProcess | None = None  # the child it was sent to
    answered: bool = False  # its result or error came (it leaves _pending later, on its loop)


class EngineProcess:
    """One child process per parent process, hosting a SpeechEngine per configuration."""

    _shared: EngineProcess | None = None
    _shared_lock = threading.Lock()

    @classmethod
    def shared(
        cls, log_level: int | str = logging.INFO, filter_warning: bool = True, recycle_growth: int = 0
    ) -> EngineProcess:
        """The process's one EngineProcess; the first caller's settings hold for it."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls(log_level, filter_warning, recycle_growth)
                # a multiprocessing finalizer, not atexit: granian's workers are multiprocessing
                # children, which skip atexit and terminate daemonic children on the way out;
                # finalizers with a priority run before that
                Finalize(None, cls._shared.stop, exitpriority=10)
            return cls._shared

    def __init__(
        self, log_level: int | str = logging.INFO, filter_warning: bool = True, recycle_growth: int = 0
    ) -> None:
        """`recycle_growth`: replace the child once, between calls, it rests this many bytes above
        its lowest rest with the same models loaded (0: never)."""
        self.log_level, self.filter_warning, self.recycle_growth = log_level, filter_warning, recycle_growth
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, _Call] = {}
        self._process: SpawnProcess | None = None
        self._conn: Connection | None = None
        self._ready = threading.Event()
        self._stopping = False  # stop() was called: a grown child is not replaced any more

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the child (if it is not running) and wait until it has imported the pipeline."""
        with self._lock:
            self._ensure_running()
            ready, process = self._ready, self._process
        if not ready.wait(timeout):
            raise PipelineError(f"the inference process did not start within {timeout:.0f}s", "INFERENCE_NOT_READY")
        # the reader saw it go before it was ready (a child replaced since, for its growth, exits 0)
        if process is not None and process.exitcode not in (None, 0):
            raise PipelineError(
                f"the inference process exited while starting (exit code {process.exitcode})",
                "INFERENCE_PROCESS_EXITED",
            )

    def _ensure_running(self) -> Connection:
        """Under self._lock."""
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        # spawn, not fork: the parent has threads (and may hold locks in them) when it starts
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=serve,
            args=(child_end, self.log_level, self.filter_warning, self.recycle_growth),
            name="whisperx-inference",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._process, self._conn, self._ready = process, parent_end, threading.Event()
        threading.Thread(target=self._read, args=(parent_end, process, self._ready), daemon=True).start()
        logger.info("inference process started (pid %s)", process.pid)
        return parent_end

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            process, conn = self._process, self._conn
            self._process = self._conn = None
        if conn is not None:
            # a message, not just close(): the reader thread blocked in recv keeps the pipe open
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
        if process is not None:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)

    def recycle(self, process: SpawnProcess) -> bool:
        """Replace `process`, if it is still the child, by a fresh one, unless a call is in flight
        or on its way to it (call() registers a call before it takes the lock). The old child's
        reader sees it exit as expected. Returns whether it was replaced."""
        with self._lock:
            if self._stopping or self._process is not process or self._conn is None:
                return False
            if any(not call.answered for call in list(self._pending.values())):
                return False
            conn = self._conn
            self._process = self._conn = None
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
            try:
                self._ensure_running()
            except Exception:  # no process or pipe to be had now (out of memory, of descriptors)
                logger.exception("the inference process was stopped for its growth; the next call starts one")
        return True

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- calls ------------------------------------------------------------------------
    async def call(self, config: EngineConfig, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run SpeechEngine(config).<method>(*args, **kwargs) in the child; callables among the
        arguments run here (on the reader thread), so they must be thread-safe."""
        loop = asyncio.get_running_loop()
        pending = _Call(loop, loop.create_future())

        def slot(value: Any) -> Any:
            if callable(value):
                pending.callbacks.append(value)
                return _Slot(len(pending.callbacks) - 1)
            return value

        message_args = tuple(slot(a) for a in args)
        message_kwargs = {k: slot(v) for k, v in kwargs.items()}
        call_id = next(self._ids)
        self._pending[call_id] = pending
        try:
            with self._lock:
                conn = self._ensure_running()
                pending.process = self._process
                try:
                    conn.send(("call", call_id, config, method, message_args, message_kwargs))
                except OSError as exc:
                    raise PipelineError(f"the inference process is gone: {exc}", "INFERENCE_PROCESS_EXITED") from exc
            return await pending.future
        except asyncio.CancelledError:
            self._cancel(call_id)
            raise
        finally:
            self._pending.pop(call_id, None)

    def _cancel(self, call_id: int) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError, ValueError):  # the child is gone: so is its work
                    self._conn.send(("cancel", call_id))

    def _read(self, conn: Connection, process: SpawnProcess, ready: threading.Event) -> None:
        """Reader thread: callbacks and results from one child, until it exits."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "ready":
                ready.set()
                continue
            if kind == "grown":
                if self.recycle(process):
                    logger.info(
                        "inference process %s replaced by a fresh one: its own memory (RssAnon) rested at %.0f MB, "
                        "%.0f above its lowest rest with the same models (INFERENCE_RECYCLE_GROWTH_MB=%.0f)",
                        process.pid, message[1] / 2**20, (message[1] - message[2]) / 2**20, self.recycle_growth / 2**20,
                    )  # fmt: skip
                continue
            call = self._pending.get(message[1])
            if call is None:
                continue
            if kind == "event":
                try:
                    call.callbacks[message[2]](*message[3])
                except Exception:
                    logger.exception("a pipeline callback failed")
            elif kind == "done":
                call.answered = True
                _deliver(call, message[2], None)
            else:
                call.answered = True
                _deliver(call, None, message[2])
        conn.close()
        process.join(1)
        code = process.exitcode
        ready.set()  # a start() still waiting for this child: it is gone, not slow (start tells which)
        with self._lock:
            unexpected = self._process is process
            if unexpected:
                self._process = self._conn = None
        lost = PipelineError(f"the inference process exited (exit code {code})", "INFERENCE_PROCESS_EXITED")
        # calls sent to this child are lost; a later child's calls are not
        for call in list(self._pending.values()):  # one C-level copy: the loop thread may add calls
            if call.process is process:
                _deliver(call, None, lost)
        if unexpected:
            logger.error("inference process %s exited unexpectedly (exit code %s)", process.pid, code)


def _deliver(call: _Call, result: Any, error: BaseException | None) -> None:
    """From the reader thread to the caller's event loop."""
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits for the answer
        call.loop.call_soon_threadsafe(_settle, call.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class RemoteEngine:
    """The SpeechEngine entry points for one configuration, run in the shared EngineProcess."""

    def __init__(self, process: EngineProcess, config: EngineConfig) -> None:
        self.process, self.config = process, config

    def start(self) -> None:
        """Blocking: start the inference process and wait for it (a worker's warm-up)."""
        self.process.start()

    async def run(
        self, path: Path, options: PipelineOptions, progress: ProgressCallback, *, align: bool = True,
        diarize: bool = True, on_segment: Callable[[Segment], None] | None = None,
    ) -> Transcript:  # fmt: skip
        result: Transcript = await self.process.call(
            self.config, "run", path, options, progress, align=align, diarize=diarize, on_segment=on_segment
        )
        return result

    async def align_transcript(
        self, path: Path, transcript: Transcript, options: PipelineOptions, progress: ProgressCallback
    ) -> Transcript:
        result: Transcript = await self.process.call(
            self.config, "align_transcript", path, transcript, options, progress
        )
        return result

    async def diarize_file(self, path: Path, options: PipelineOptions, progress: ProgressCallback) -> Diarized:
        result: Diarized = await self.process.call(self.config, "diarize_file", path, options, progress)
        return result

    async def speaker_embedding(self, path: Path, options: PipelineOptions) -> Enrolment:
        enrolment: Enrolment = await self.process.call(self.config, "speaker_embedding", path, options)
        return enrolment

    async def combine(self, transcript: Transcript, diarization: list[Turn]) -> Transcript:
        result: Transcript = await self.process.call(self.config, "combine", transcript, diarization)
        return result

    async def model_loads(self) -> dict[tuple[str, ...], int]:
        """How often each model was loaded in the child (for tests and diagnostics)."""
        loads: dict[tuple[str, ...], int] = await self.process.call(self.config, "model_loads")
        return loads


# -- the child -----------------------------------------------------------------------------
def serve(conn: Connection, log_level: int | str, filter_warning: bool, recycle_growth: int = 0) -> None:
    """Child main: run calls on each configuration's engine threads until the parent goes away."""
    # The parent owns this process's life: it stops it after its own drain, and this process ends
    # when the parent's pipe closes, however the parent went. A stop signal sent to the whole
    # process group (Ctrl-C in a terminal; systemd's default KillMode, `kill -- -PGID`) would
    # otherwise end the work in flight before the parent's grace period, or kill a child still
    # starting, which the parent's warm-up then waited for until READY_TIMEOUT_S.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # the name `ps` and `top` show (15 characters at most)
        Path("/proc/self/comm").write_text("whisperx-infer")
    setup_logging(log_level, filter_warning)
    from whisperx_api.memory import (
        freeze_long_lived,
        limit_native_caches,
        release_gpu_library_data,
        release_library_pages,
        resident_anonymous,
        tune_allocator,
    )

    limit_native_caches()
    tune_allocator()
    from whisperx_api.pipeline.engine import SpeechEngine
    from whisperx_api.pipeline.models import no_gpu_visible
    from whisperx_api.pipeline.rest_watch import RestWatch

    if no_gpu_visible():  # no call will ever reach the GPU's libraries
        logger.info("%.0f MB of GPU-only libraries' data released (no GPU)", release_gpu_library_data() / 2**20)
    freeze_long_lived()
    # before any call (no other thread loads a library now): what the imports touched; the calls
    # take back what they use
    logger.info("%.0f MB of the libraries' pages released after the imports", release_library_pages() / 2**20)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        # the parent may be gone (OSError); the main loop then sees it and exits. Anything else
        # (a result that cannot be pickled) reaches settle, which answers with the error instead.
        with send_lock, contextlib.suppress(OSError):
            conn.send(message)

    # calls sent and not yet answered, and those of them whose caller went away (a cancel that
    # crosses its call's answer is dropped); set operations hold the GIL
    running: set[int] = set()
    cancelled: set[int] = set()
    watch, watch_lock = RestWatch(recycle_growth), threading.Lock()

    def look_at_rest() -> None:
        """After a call, on its thread: with none left running, is this rest worth a fresh process?"""
        with watch_lock:
            if running:
                return
            now = resident_anonymous()
            if watch.grown(now, SpeechEngine.model_loads_in_process()):
                send(("grown", now, watch.lowest))

    def settle(call_id: int, engine: SpeechEngine, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            if call_id in cancelled:
                raise CallCancelledError
            send(("done", call_id, getattr(engine, method)(*args, **kwargs)))
        except CallCancelledError:
            logger.info("%s stopped: its caller went away", method)
        except BaseException as exc:  # every failure goes back to the caller
            if not isinstance(exc, PipelineError):
                logger.exception("%s failed in the inference process", method)  # the traceback stays here
            send(("error", call_id, _portable(exc)))
        finally:
            running.discard(call_id)
            cancelled.discard(call_id)
            look_at_rest()

    send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "stop":
            break
        if message[0] == "cancel":
            if message[1] in running:
                cancelled.add(message[1])
            continue
        _, call_id, config, method, args, kwargs = message
        running.add(call_id)

        def event(index: int, call_id: int = call_id) -> Callable[..., None]:
            def fire(*values: Any) -> None:
                if call_id in cancelled:  # raised inside the pipeline, which unwinds from there
                    raise CallCancelledError
                send(("event", call_id, index, values))

            return fire

        args = tuple(event(a.index) if isinstance(a, _Slot) else a for a in args)
        kwargs = {k: event(v.index) if isinstance(v, _Slot) else v for k, v in kwargs.items()}
        engine = SpeechEngine.shared(config)
        engine.executor.submit(settle, call_id, engine, method, args, kwargs)
    # parent gone: running calls have nobody to answer to
    os._exit(0)


class CallCancelledError(BaseException):
    """Raised in the child, from a cancelled call's next callback, to stop its work. Not an
    Exception, as asyncio's CancelledError is not: the pipeline's and its libraries' `except
    Exception` fallbacks (the hub diarizer's, say) must not take it for a failure to work around."""


def _portable(exc: BaseException) -> BaseException:
    """What the parent can unpickle without importing ML code: PipelineErrors and built-in
    exceptions as they are, anything else as a RuntimeError that names it."""
    if isinstance(exc, PipelineError) or type(exc).__module__ == "builtins":
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:  # an exception type with an unusual constructor
            pass
    return RuntimeError(f"{type(exc).__name__}: {exc}")
