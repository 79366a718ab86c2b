"""Speaker labels for transcript segments: who spoke each one.

A ``Diarizer`` (``base``) gets the whole recording and the segments' time spans and returns one
label per span. ``CamppDiarizer`` (``campp``) embeds each segment with the CAM++ speaker model and
groups the embeddings (``clustering``). It needs ``taskpost[diarize]``; without it,
``shared_diarizer()`` raises ``MissingExtra("diarize")``.
"""

from taskpost.agent.media.diarization.base import SAMPLE_RATE, Diarizer, Span, speaker_names
from taskpost.agent.media.diarization.campp import CamppDiarizer, shared_diarizer
from taskpost.agent.media.diarization.clustering import cluster_embeddings

__all__ = [
    "SAMPLE_RATE",
    "CamppDiarizer",
    "Diarizer",
    "Span",
    "cluster_embeddings",
    "shared_diarizer",
    "speaker_names",
]
