"""Helpers for reading received digests."""

from __future__ import annotations

import re
import struct
import zlib
from email.message import EmailMessage
from urllib.parse import urlsplit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_decode(data: bytes) -> tuple[int, int]:
    """Check a PNG completely: signature, every chunk's CRC, and that the image data
    inflates to exactly height x (1 + width x bytes per pixel). Returns (width, height)."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG signature"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "no IHDR"
    width, height, depth, color, _, _, interlace = header
    assert interlace == 0
    raw = zlib.decompress(idat)
    row = 1 + (width * _CHANNELS[color] * depth + 7) // 8
    assert len(raw) == height * row, "image data does not match its size"
    return width, height


def parts(message: EmailMessage) -> dict[str, list]:
    found: dict[str, list] = {}
    for part in message.walk():
        found.setdefault(part.get_content_type(), []).append(part)
    return found


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def links(html: str, site: str) -> list[str]:
    """Every link into the app, as path?query (the HTML-escaped & undone)."""
    found = []
    for href in re.findall(r'href="([^"]+)"', html):
        href = href.replace("&amp;", "&")
        if href.startswith(site):
            split = urlsplit(href)
            found.append(split.path + (f"?{split.query}" if split.query else ""))
    return found


def metric_line(text: str, label: str) -> str:
    """The value shown after 'label: ' in the text part."""
    match = re.search(rf"^{re.escape(label)}: (\S+)", text, flags=re.MULTILINE)
    assert match, f"{label!r} not in the text part"
    return match.group(1)
