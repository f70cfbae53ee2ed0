"""AWS's binary event-stream framing, written (for the Bedrock fake's ConverseStream).

A message: total length and headers length (big-endian uint32 each), the CRC32 of those 8 bytes,
the headers, the payload, then the CRC32 of everything before it. A header: name length (1 byte),
name, value type (7 = string), value length (uint16), value.
"""

from __future__ import annotations

import struct
import zlib

STRING = 7


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", STRING, len(raw_value)) + raw_value
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: bytes) -> bytes:
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception(kind: str, payload: bytes) -> bytes:
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 payload)
