"""Reading a multipart upload as it arrives: form fields kept, files spooled (gateway/core/upload.py)."""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from gateway.core.errors import InvalidRequest
from gateway.core.upload import FilePart, Upload
from gateway.edge.body import receive_body

MAX_FIELD_BYTES = 64 * 1024


class _Reader:
    """python-multipart's callbacks, building an Upload."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._value: bytearray | None = None
        self._name = ""
        self._file: FilePart | None = None

    def on_part_begin(self) -> None:
        self.headers, self._value, self._file = {}, None, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self._value = bytearray()
            return
        content_type = self.headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
        self._file = FilePart(self._name, filename.decode("utf-8", "replace"), content_type)
        self.upload.files.append(self._file)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.data.write(data[start:end])
            self._file.size += end - start
        elif self._value is not None:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"The form field '{self._name}' is longer than {MAX_FIELD_BYTES} bytes.",
                                     param=self._name)

    def on_part_end(self) -> None:
        if self._value is not None:
            self.upload.fields.append((self._name, self._value.decode("utf-8", "replace")))
            self._value = None


async def read_upload(request: Request, limit: int, total_s: float = 60.0, idle_s: float = 15.0) -> Upload:
    """The whole form, its files spooled to disk past a megabyte; never more than `limit` bytes, and
    408 if it takes longer than `total_s` in all or leaves a gap longer than `idle_s`."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("This endpoint takes a multipart/form-data upload with a 'file' and a 'model'.")
    upload = Upload()
    reader = _Reader(upload)
    parser = MultipartParser(boundary, {  # type: ignore[arg-type]
        name: getattr(reader, name) for name in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
            "on_part_data", "on_part_end")})
    try:
        await receive_body(request, limit, total_s, idle_s, parser.write)
        parser.finalize()
    except MultipartParseError:
        upload.close()
        raise InvalidRequest("The multipart/form-data body could not be parsed.") from None
    except BaseException:
        upload.close()
        raise
    return upload
