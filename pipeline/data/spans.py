"""Where each stream of a clip really starts and ends, from its packets (not its header).

Headers are not trusted: an AVI's says its video starts at 0 when its first frame is at
0.04 s, a file cut short still declares its full length, and a stream written to a pipe
declares no length at all. The packets of the file's first and last second say (demuxed, not
decoded: a bounded cost whatever the clip's length).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.media import AV_TIME_BASE, Media, frame_rate, origin_of, seconds

__all__ = ["Span", "measure_spans"]


@dataclass(frozen=True)
class Span:
    """Where a stream's data lies, in seconds on the container's own clock (not yet minus
    ``origin``): ``start`` of its first frame, ``end`` of its last (measured from the packets
    at the end of the file, not the header)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


TAIL_SECONDS = 1.0  # how far before the declared end the packet scan starts


def measure_spans(media: Media, indices: list[int]) -> dict[int, Span]:
    """Each stream's first and last instant (container clock), from the packets at the start
    and in the last second of the file (demuxed, not decoded: bounded cost). Headers are not
    trusted for either: an AVI's header says its video starts at 0 when its first frame is at
    0.04 s, and a file cut short still declares its full length. Where the header declares no
    duration, or no packet of a stream lies past the declared end minus a second, the packets
    are scanned from the start."""
    container = media.container
    origin = origin_of(container)
    declared = (container.duration or 0) / AV_TIME_BASE
    starts = _packet_starts(media, indices)
    ends: dict[int, float] = {}
    # ffmpeg's Matroska reader gives the end time as the duration when timestamps start late
    tails = list(dict.fromkeys([origin + declared, declared])) if declared > 0 else []
    for end in tails:
        if set(ends) != set(indices) and media.seek(end - TAIL_SECONDS):
            ends = _packet_ends(media, indices)
    counts: dict[int, int] = {}
    if set(ends) != set(indices):
        media.rewind()
        ends = _packet_ends(media, indices, counts)
    spans = {}
    for index in indices:
        stream = media.stream(index)
        start = starts.get(index, seconds(stream.start_time, stream.time_base))
        start = origin if start is None else start
        end = ends.get(index)
        if end is None and counts.get(index) and stream.type == "video" and frame_rate(stream):
            end = start + counts[index] / frame_rate(stream)  # no timestamps: frames at the rate
        spans[index] = Span(start, max(start, end if end is not None else start))
    return spans


HEAD_PACKETS = 32  # B-frame reordering puts the first shown frame within a stream's first few


def _stamp(packet) -> int | None:
    return packet.pts if packet.pts is not None else packet.dts


def _packet_starts(media: Media, indices: list[int]) -> dict[int, float]:
    """Stream index -> where it starts, read from the start of a freshly opened container:
    a video stream at the earliest timestamp among its first ``HEAD_PACKETS`` packets (B-frame
    reordering), an audio stream at its first decoded sample (codecs drop their priming
    samples, which the packets still count)."""
    starts: dict[int, float] = {}
    seen: dict[int, int] = {}
    done: set[int] = set()
    streams = {i: media.stream(i) for i in indices}
    for packet in media.container.demux(list(streams.values())):
        index, stamp = packet.stream_index, _stamp(packet)
        if index not in streams or index in done:
            continue
        stream = streams[index]
        if stream.type == "audio":
            for frame in packet.decode():
                if frame.pts is not None and frame.samples:
                    starts[index] = float(frame.pts * (frame.time_base or stream.time_base))
                    done.add(index)
                    break
        elif stamp is not None:
            t = float(stamp * stream.time_base)
            starts[index] = min(starts.get(index, t), t)
            seen[index] = seen.get(index, 0) + 1
            if seen[index] >= HEAD_PACKETS:
                done.add(index)
        if len(done) == len(indices):
            break
    return starts


def _packet_ends(media: Media, indices: list[int], counts: dict[int, int] | None = None
                 ) -> dict[int, float]:
    """Stream index -> the latest ``pts + duration`` (dts when pts is unset) among the packets
    from the current position to the end of the file; ``counts`` gets the number of packets
    of each stream (a stream without timestamps has frames only at its rate)."""
    ends: dict[int, float] = {}
    streams = {i: media.stream(i) for i in indices}
    for packet in media.container.demux(list(streams.values())):
        index, stamp = packet.stream_index, _stamp(packet)
        if index not in streams or packet.size == 0:
            continue
        if counts is not None:
            counts[index] = counts.get(index, 0) + 1
        if stamp is None:
            continue
        stream = streams[index]
        step = packet.duration or _default_step(stream)
        end = float((stamp + step) * stream.time_base)
        ends[index] = max(ends.get(index, end), end)
    return ends


def _default_step(stream) -> int:
    """One frame in ``stream.time_base`` ticks when a packet does not say its duration."""
    if stream.type == "video":
        rate = frame_rate(stream)
        return int(round(1 / (rate * stream.time_base))) if rate else 0
    size, rate = stream.codec_context.frame_size, stream.codec_context.sample_rate
    return int(round(size / (rate * stream.time_base))) if size and rate else 0
