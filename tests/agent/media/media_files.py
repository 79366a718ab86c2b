"""Test media made on the spot: a tiny video from ffmpeg's test sources, and a conversation of two
espeak-ng voices taking turns."""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

RAMP_RATE = 44_100
RAMP_S = 3.0


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, capture_output=True, timeout=60)


def make_video(path: Path, *, audio: bool = True) -> Path:
    """A 3 s, 160x120 H.264 video; with ``audio``, a stereo AAC track at 44.1 kHz whose 440 Hz
    tone grows louder with time (amplitude ``0.25 * t``, so a cut's loudness says where it is from)
    and whose right channel is silent (a mono mix has half the left's amplitude)."""
    video = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={RAMP_S}"]
    sound = [
        "-f", "lavfi",
        "-i", f"aevalsrc=exprs=0.25*t*sin(2*PI*440*t)|0:sample_rate={RAMP_RATE}:duration={RAMP_S}",
    ] if audio else []  # fmt: skip
    codecs = ["-c:v", "libx264", "-pix_fmt", "yuv420p", *(["-c:a", "aac", "-shortest"] if audio else [])]
    _ffmpeg(*video, *sound, *codecs, str(path))
    return path


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    voice: tuple[str, ...]


VOICE_A = ("-v", "en-gb-x-rp", "-p", "25", "-s", "140")
VOICE_B = ("-v", "en-us+f2", "-p", "90", "-s", "180")
TURNS = (
    Turn("A", "Good morning. I would like to book the small meeting room for next Tuesday.", VOICE_A),
    Turn("B", "Yes, the room is free on Tuesday afternoon. You can book it at the front desk.", VOICE_B),
    Turn("A", "That sounds good. Please remind the team to bring the quarterly report.", VOICE_A),
    Turn("B", "Of course. I will send everyone a short message this evening.", VOICE_B),
)
"""Two voices that CAM++ tells apart: one voice's turns score 0.87-0.91 cosine similarity, the
other voice's 0.32-0.37."""
PAUSE_S = 0.5


def conversation(folder: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The turns spoken one after another with a pause between, as one WAV; and each turn's span."""
    frames: list[bytes] = []
    spans: list[tuple[float, float]] = []
    position = 0.0
    rate = 0
    for index, turn in enumerate(TURNS):
        part = folder / f"turn-{index}.wav"
        subprocess.run(["espeak-ng", *turn.voice, "-w", str(part), turn.text], check=True, timeout=60)
        with wave.open(str(part)) as reader:
            rate = reader.getframerate()
            count = reader.getnframes()
            frames.append(reader.readframes(count))
        spans.append((position, position + count / rate))
        position += count / rate + PAUSE_S
        frames.append(b"\0\0" * round(PAUSE_S * rate))
    path = folder / "conversation.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"".join(frames))
    return path, spans
