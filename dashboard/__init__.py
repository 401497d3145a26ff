"""The supervisor and manager dashboard: a small FastAPI app that reads Redis and streams changes to the page."""
