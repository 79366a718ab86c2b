"""A local S3-compatible server for the tests: moto's server mode, in a child process on 127.0.0.1.

moto runs offline from its PyPI package. It runs in its own process, not a thread of the test
process, so that memory measured in a test (tracemalloc) is the client's alone, and so that
the S3 traffic is real HTTP between two processes, as with a real store.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskpost.launch import wait_until
from taskpost.server.blobs.s3 import S3Location, S3Options

REGION = "us-east-1"
ACCESS_KEY_ID = "test-access-key"
SECRET_ACCESS_KEY = "test-secret-key"  # moto accepts any credentials

# The child binds port 0, writes the port it got, and serves until its stdin closes (the test
# process ended, however it ended).
_SERVE = """
import os, sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port_file = sys.argv[1]
with open(port_file + ".tmp", "w") as handle:
    handle.write(str(server.get_host_and_port()[1]))
os.replace(port_file + ".tmp", port_file)
sys.stdin.read()
server.stop()
"""


class MotoS3Server:
    """moto's S3 server in a child process; ``endpoint_url`` once started."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "moto.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""
        self._client: Any = None

    def start(self) -> MotoS3Server:
        port_file = self.folder / "moto.port"
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _SERVE, str(port_file)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def port() -> str | None:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"moto's server exited early:\n{self.log.read_text(errors='replace')}")
            return port_file.read_text() if port_file.exists() else None

        self.endpoint_url = f"http://127.0.0.1:{wait_until(port, 60, 'moto S3 server port')}"
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.popen is None:
            return
        assert self.popen.stdin is not None
        self.popen.stdin.close()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def client(self) -> Any:
        """A plain (synchronous) boto3 client on this server, to look at what a test left."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
            )
        return self._client

    def options(self, part_size: int = 8 * 1024**2) -> S3Options:
        return S3Options(
            endpoint_url=self.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            addressing_style="path",
            part_size=part_size,
        )

    def settings_env(self, bucket: str, prefix: str = "blobs") -> dict[str, str]:
        """The coordinator's settings that keep its blobs in ``bucket`` on this server."""
        return {
            "blob_url": f"s3://{bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SECRET_ACCESS_KEY,
            "s3_addressing_style": "path",
        }


@dataclass
class S3Bucket:
    """A fresh bucket on the test server, and what a test can see in it."""

    server: MotoS3Server
    name: str

    @classmethod
    def create(cls, server: MotoS3Server) -> S3Bucket:
        bucket = cls(server, f"taskpost-test-{uuid.uuid4().hex[:12]}")
        server.client().create_bucket(Bucket=bucket.name)
        return bucket

    def location(self, prefix: str = "blobs/") -> S3Location:
        return S3Location(self.name, prefix)

    def object_keys(self) -> list[str]:
        listed = self.server.client().list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        listed = self.server.client().list_multipart_uploads(Bucket=self.name)
        return sorted(upload["Key"] for upload in listed.get("Uploads", []))

    def etag(self, key: str) -> str:
        etag: str = self.server.client().head_object(Bucket=self.name, Key=key)["ETag"]
        return etag.strip('"')
