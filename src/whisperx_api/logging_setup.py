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


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.effective_log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger().setLevel(settings.effective_log_level)
    if settings.filter_warning:
        for action, message in _FILTERED:
            warnings.filterwarnings(action, message=message)  # type: ignore[arg-type]
