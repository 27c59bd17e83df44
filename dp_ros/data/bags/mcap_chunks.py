"""Messages of a chunked MCAP file, read chunk by chunk without copies.

rosbags reads MCAP correctly but, per message, copies its bytes three times and
checks every chunk's CRC: for a bag of 640x480 images that was most of the
conversion's time. Here the chunk index comes from the ``mcap`` library's
summary, each chunk needed is read and decompressed once (zstd or lz4), and its
message records are parsed in place: a message's data is a memoryview into the
decompressed chunk. Chunks are taken in order of their first message, and
messages leave in log-time order even where chunks overlap in time.
"""
from __future__ import annotations

import heapq
import struct
from pathlib import Path
from typing import Iterator

MESSAGE_OPCODE = 0x05
_RECORD_HEADER = struct.Struct("<BQ")
_MESSAGE_HEADER = struct.Struct("<HIQ")  # channel id, sequence, log time (publish time follows)
_MESSAGE_PREFIX = 2 + 4 + 8 + 8


def zstd_module():
    """Python's zstd module (``compression.zstd`` from 3.14, its backport before; rosbags depends on it)."""
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd


def _decompressor(compression: str):
    if compression == "":
        return lambda data, size: data
    if compression == "zstd":
        return lambda data, size: zstd_module().decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress

        return lambda data, size: decompress(data)
    raise ValueError(f"unsupported MCAP chunk compression {compression!r}")


def chunk_index(path: Path):
    """The chunk indexes of an MCAP file (empty when it has no chunks or no summary)."""
    from mcap.reader import make_reader

    with open(path, "rb") as stream:
        summary = make_reader(stream).get_summary()
    return list(summary.chunk_indexes) if summary is not None else []


def _chunk_messages(stream, chunk, channels: set[int]) -> list[tuple[int, int, memoryview]]:
    """(log time, channel id, data) of the wanted channels' messages in one chunk, sorted by log time."""
    stream.seek(chunk.chunk_start_offset + 1 + 8 + 8 + 8 + 8 + 4 + 4 + len(chunk.compression) + 8)
    compressed = stream.read(chunk.compressed_size)
    if len(compressed) != chunk.compressed_size:
        raise ValueError(f"chunk at byte {chunk.chunk_start_offset} is truncated")
    records = memoryview(_decompressor(chunk.compression)(compressed, chunk.uncompressed_size))
    if len(records) != chunk.uncompressed_size:
        raise ValueError(f"chunk at byte {chunk.chunk_start_offset} decompressed to {len(records)} bytes, "
                         f"its index says {chunk.uncompressed_size}")
    found = []
    position, end = 0, len(records)
    while position < end:
        opcode, length = _RECORD_HEADER.unpack_from(records, position)
        body = position + _RECORD_HEADER.size
        if body + length > end:
            raise ValueError(f"a record in the chunk at byte {chunk.chunk_start_offset} runs past its end")
        if opcode == MESSAGE_OPCODE:
            channel, _, log_time = _MESSAGE_HEADER.unpack_from(records, body)
            if channel in channels:
                found.append((log_time, channel, records[body + _MESSAGE_PREFIX:body + length]))
        position = body + length
    found.sort(key=lambda item: item[0])
    return found


def chunked_messages(path: Path, chunks: list, channels: set[int]) -> Iterator[tuple[int, int, memoryview]]:
    """(log time, channel id, data) of the wanted channels, in log-time order."""
    wanted = sorted((c for c in chunks if not c.message_index_offsets or set(c.message_index_offsets) & channels),
                    key=lambda c: (c.message_start_time, c.chunk_start_offset))
    pending: list[tuple[int, int, int, memoryview]] = []  # (log time, order, channel, data)
    order = 0
    with open(path, "rb", buffering=0) as stream:
        for chunk in wanted:
            while pending and pending[0][0] < chunk.message_start_time:
                log_time, _, channel, data = heapq.heappop(pending)
                yield log_time, channel, data
            for log_time, channel, data in _chunk_messages(stream, chunk, channels):
                heapq.heappush(pending, (log_time, order, channel, data))
                order += 1
        while pending:
            log_time, _, channel, data = heapq.heappop(pending)
            yield log_time, channel, data
