# Taskpost image. The default command runs an agent (HTTP remote worker); the same image runs
# the coordinator with `taskpost server --host 0.0.0.0` (see k8s/coordinator.yaml).
#
#   docker build -t taskpost .
#   docker build --build-arg EXTRAS=media -t taskpost:media .   # handlers' optional extras
#   docker run --env-file .env -p 8080:8080 taskpost
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TASKPOST_HEALTH_HOST=0.0.0.0 \
    TASKPOST_HEALTH_PORT=8080 \
    TASKPOST_WORK_DIR=/home/taskpost/work

WORKDIR /opt/taskpost
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY server ./server
COPY agent ./agent
COPY taskpost ./taskpost
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin taskpost \
    && mkdir -p /home/taskpost/work \
    && chown taskpost:taskpost /home/taskpost/work

USER taskpost
WORKDIR /home/taskpost

EXPOSE 8080
# 503 (stopping, or no answer from the coordinator for a while) or no answer fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TASKPOST_HEALTH_PORT', '8080'), timeout=4)" || exit 1

# Exec form: the agent is PID 1's child under `init: true`, or PID 1 itself, and gets SIGTERM
# directly; it then stops claiming and lets running tasks finish (TASKPOST_SHUTDOWN_GRACE_S).
STOPSIGNAL SIGTERM
CMD ["taskpost", "agent"]
