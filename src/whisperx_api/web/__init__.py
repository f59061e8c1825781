"""What people open in a browser: the transcription page at / and the API docs' assets, all
served by the service itself (no CDN: it runs air-gapped)."""
