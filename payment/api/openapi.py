"""GET /openapi.json and GET /schemas/{file}: the API description as it is in
the repository. The document's `$ref`s are relative (`schemas/x.schema.json`),
so a tool that reads it from the service finds the schema files beside it."""

from __future__ import annotations

from pathlib import Path

import falcon

from payment.files import OPENAPI_PATH, SCHEMA_DIR


class OpenApiResource:
    def __init__(self, path: Path = OPENAPI_PATH) -> None:
        self.document = path.read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.document


class SchemaFileResource:
    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        # Read once, by name: no path from a request ever reaches the file system.
        self.files = {path.name: path.read_bytes() for path in directory.glob("*.schema.json")}

    def on_get(self, req: falcon.Request, resp: falcon.Response, file: str) -> None:
        document = self.files.get(file)
        if document is None:
            raise falcon.HTTPNotFound(title="Schema file not found")
        resp.content_type = "application/schema+json"
        resp.data = document
