# syntax=docker/dockerfile:1
# Taskpost images, one target each (docs/deploy.md#images):
#
#   docker build --target coordinator -t taskpost-coordinator .
#   docker build --target agent-cpu   -t taskpost-agent-cpu .
#   docker build --target agent-gpu   -t taskpost-agent-gpu .
#   docker build --target agent-cpu --build-arg AGENT_CPU_EXTRAS=ocr,docs -t taskpost-agent-ocr .
#
# Every extra named below is one of pyproject.toml's [project.optional-dependencies]
# (tests/deploy/test_dockerfile.py checks it).
#
# GPU: CTranslate2 (faster-whisper) needs cuBLAS for CUDA 12 and cuDNN 9. They come from the
# nvidia-cublas-cu12 / nvidia-cudnn-cu12 wheels that CTranslate2 and faster-whisper document,
# not from an nvidia/cuda base image: pip pins them beside the Python packages that load them,
# the image keeps the same Python 3.11 base as the others, and only the two libraries we load
# are installed. The driver (libcuda) comes from the host through the NVIDIA container toolkit.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: one wheel of Taskpost, and a virtual environment per target ------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY server ./server
COPY agent ./agent
COPY taskpost ./taskpost
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv

FROM build AS venv-coordinator
ARG COORDINATOR_EXTRAS=postgres,s3
RUN /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/taskpost-*.whl)[${COORDINATOR_EXTRAS}]"

FROM build AS venv-agent-cpu
ARG AGENT_CPU_EXTRAS=ocr,docs,web,llm,video,audiobook
RUN /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/taskpost-*.whl)[${AGENT_CPU_EXTRAS}]"

FROM build AS venv-agent-gpu
ARG AGENT_GPU_EXTRAS=stt,download
RUN /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/taskpost-*.whl)[${AGENT_GPU_EXTRAS}]" \
        "nvidia-cublas-cu12==12.*" "nvidia-cudnn-cu12==9.*"

# ---- runtime: what every target shares ----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# One unprivileged user; the folders that volumes mount over are created here so that a fresh
# named volume starts out owned by it (Docker copies the ownership of the image's folder).
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin taskpost \
    && install -d -o taskpost -g taskpost -m 0700 /data /keys /home/taskpost/work \
    && install -d -o taskpost -g taskpost -m 0755 /home/taskpost/.cache
WORKDIR /home/taskpost
# Exec form: the process gets SIGTERM itself and drains (agents: TASKPOST_SHUTDOWN_GRACE_S).
STOPSIGNAL SIGTERM

# ---- coordinator: taskpost server on SQLite under /data, or PostgreSQL --------------------------
FROM runtime AS coordinator
COPY --from=venv-coordinator /opt/venv /opt/venv
ENV TASKPOST_DATA_DIR=/data
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["taskpost", "server", "--host", "0.0.0.0", "--port", "8000"]

# ---- agents: taskpost agent, /health on 8080 -----------------------------------------------------
FROM runtime AS agent-base
ENV TASKPOST_HEALTH_HOST=0.0.0.0 \
    TASKPOST_HEALTH_PORT=8080 \
    TASKPOST_WORK_DIR=/home/taskpost/work \
    HF_HOME=/home/taskpost/.cache/huggingface
EXPOSE 8080
# /health answers 503 while stopping or out of touch with the coordinator; both fail the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["taskpost", "agent"]

FROM agent-base AS agent-gpu
# url_audio: yt-dlp extracts the audio with Debian's ffmpeg.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
COPY --from=venv-agent-gpu /opt/venv /opt/venv
# The NVIDIA container toolkit reads these; the wheels' libraries are found through the path.
ENV TASKPOST_WORKER_TYPE=gpu \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib
USER 10001:10001

# Last, so that a plain `docker build .` gives the CPU agent.
FROM agent-base AS agent-cpu
# audiobook: espeak-ng is its default (offline) voice.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*
COPY --from=venv-agent-cpu /opt/venv /opt/venv
ENV TASKPOST_WORKER_TYPE=cpu
USER 10001:10001
