from __future__ import annotations

import logging
import warnings

from whisperx_api.settings import Settings

# Noisy third-party warnings that say nothing actionable to an operator (FILTER_WARNING=true).
_FILTERED = [
    ("ignore", ".*torchaudio._backend.*"),
    ("ignore", ".*TensorFloat-32.*"),
    ("ignore", ".*pkg_resources is deprecated.*"),
    ("ignore", ".*std\\(\\): degrees of freedom.*"),
]


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    setup_logging(settings.effective_log_level, settings.filter_warning)


def setup_logging(level: int | str, filter_warning: bool) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger().setLevel(level)
    if filter_warning:
        for action, message in _FILTERED:
            warnings.filterwarnings(action, message=message)  # type: ignore[arg-type]
