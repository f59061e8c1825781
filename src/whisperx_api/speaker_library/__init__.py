"""The speaker library: stored voices (rows and vector indexes), and naming the speakers of a
diarized result with them. Below the HTTP slices: the transcription service and /speakers use it."""
