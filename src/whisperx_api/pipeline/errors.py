class PipelineError(Exception):
    """A failure with a stable code that the task records (and the API reports)."""

    def __init__(self, message: str, code: str = "PIPELINE_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # pickled on the way back from the inference process: keep the type, message and code
        return (_restore, (type(self), self.message, self.code))


def _restore(cls: type[PipelineError], message: str, code: str) -> PipelineError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.message, error.code = message, code
    return error


class AudioProcessingError(PipelineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "AUDIO_PROCESSING_ERROR")
