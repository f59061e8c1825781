class PipelineError(Exception):
    """A failure with a stable code that the task records (and the API reports)."""

    def __init__(self, message: str, code: str = "PIPELINE_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class AudioProcessingError(PipelineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "AUDIO_PROCESSING_ERROR")
