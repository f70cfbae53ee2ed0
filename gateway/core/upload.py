"""A multipart upload (audio to transcribe, an image to edit): small form fields in memory, files
spooled to disk past a megabyte, and the same form written again for the upstream as a stream."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import IO

SPOOL_IN_MEMORY = 1 << 20
READ_SIZE = 1 << 16

# Called once per attempt: each attempt (a retry, a fallback) sends the form from its start.
BodyFactory = Callable[[], AsyncIterator[bytes]]


@dataclass(slots=True)
class FilePart:
    name: str
    filename: str
    content_type: str
    data: IO[bytes] = field(default_factory=lambda: SpooledTemporaryFile(SPOOL_IN_MEMORY))
    size: int = 0


@dataclass(slots=True)
class Upload:
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)

    def close(self) -> None:
        for part in self.files:
            part.data.close()

    def form(self, fields: list[tuple[str, str]]) -> tuple[str, int, BodyFactory]:
        """This upload's files with `fields` (the client's, adjusted for the upstream): the
        content type, the exact length, and a factory of the body's bytes, read from the spool."""
        boundary = "gateway" + secrets.token_hex(12)
        heads = [_field_head(boundary, name) + value.encode() + b"\r\n" for name, value in fields]
        file_heads = [_file_head(boundary, part) for part in self.files]
        tail = f"--{boundary}--\r\n".encode()
        files = zip(file_heads, self.files, strict=True)
        length = sum(map(len, heads)) + sum(len(h) + part.size + 2 for h, part in files) + len(tail)

        async def body() -> AsyncIterator[bytes]:
            yield b"".join(heads)
            for head, part in zip(file_heads, self.files, strict=True):
                yield head
                part.data.seek(0)
                while chunk := part.data.read(READ_SIZE):
                    yield chunk
                yield b"\r\n"
            yield tail

        return f"multipart/form-data; boundary={boundary}", length, body


def _quote(value: str) -> str:
    # The HTML form encoding of names in Content-Disposition: quotes and line breaks escaped.
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def _field_head(boundary: str, name: str) -> bytes:
    return f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()


def _file_head(boundary: str, part: FilePart) -> bytes:
    filename = _quote(os.path.basename(part.filename) or "file")
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(part.name)}"; filename="{filename}"\r\n'
            f"Content-Type: {_quote(part.content_type)}\r\n\r\n").encode()
