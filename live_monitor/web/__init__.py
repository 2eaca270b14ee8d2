"""The HTTP face: the Flask app, ingest, OTLP, metrics, OpenAPI and the server."""
