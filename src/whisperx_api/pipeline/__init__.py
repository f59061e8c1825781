"""The speech pipeline: plain functions, data in and out, no web types."""
