"""The HTTP face: the app (app, api), its rules (access, bodies, errors, encoding), ingest, OTLP,
metrics, OpenAPI and the server."""
