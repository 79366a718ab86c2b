"""The blob store named by the settings: TASKPOST_BLOB_URL and the S3 settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from taskpost.server.blobs import LocalBlobStore, blob_store_from_settings
from taskpost.server.blobs.s3 import S3BlobStore, S3Location, S3Options
from taskpost.server.settings import Settings

S3_ENV = {
    "TASKPOST_BLOB_URL": "s3://media-bucket/taskpost/blobs/",
    "TASKPOST_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    "TASKPOST_S3_REGION": "eu-west-1",
    "TASKPOST_S3_ACCESS_KEY_ID": "key-id",
    "TASKPOST_S3_SECRET_ACCESS_KEY": "very-secret",
    "TASKPOST_S3_ADDRESSING_STYLE": "path",
    "TASKPOST_S3_PART_SIZE_BYTES": str(16 * 1024**2),
    "TASKPOST_S3_MAX_CONNECTIONS": "8",
}


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_without_a_blob_url_blobs_stay_in_the_local_directory(tmp_path: Path) -> None:
    store = blob_store_from_settings(Settings(_env_file=None, data_dir=tmp_path))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"


@pytest.mark.anyio
async def test_a_blob_url_makes_an_s3_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aiobotocore", reason="the S3 store needs the extra s3")
    settings = settings_from(monkeypatch, S3_ENV)
    assert "very-secret" not in repr(settings)
    store = blob_store_from_settings(settings)
    assert isinstance(store, S3BlobStore)
    assert store.location == S3Location("media-bucket", "taskpost/blobs/")
    assert store.options == S3Options(
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        access_key_id="key-id",
        secret_access_key="very-secret",
        addressing_style="path",
        part_size=16 * 1024**2,
        max_connections=8,
    )
    await store.aclose()  # nothing was opened: closing is still fine


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("s3://b", S3Location("b", "")),
        ("s3://b/", S3Location("b", "")),
        ("s3://b/x/y", S3Location("b", "x/y/")),
    ],
)
def test_blob_urls_name_a_bucket_and_a_prefix(url: str, location: S3Location) -> None:
    assert S3Location.parse(url) == location


@pytest.mark.parametrize(
    "url", ["bucket/prefix", "http://bucket/prefix", "s3://", "s3:///prefix", "s3://b/p?x=1"]
)
def test_a_blob_url_that_is_not_s3_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    with pytest.raises(ValidationError, match="s3://bucket/prefix"):
        settings_from(monkeypatch, {"TASKPOST_BLOB_URL": url})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TASKPOST_BLOB_DIR": "/srv/blobs"}, "not both"),
        ({"TASKPOST_S3_SECRET_ACCESS_KEY": ""}, "or neither"),
        ({"TASKPOST_MAX_UPLOAD_BYTES": str(10_000 * 16 * 1024**2 + 1)}, "10,000 parts"),
        ({"TASKPOST_S3_PART_SIZE_BYTES": str(5 * 1024**2 - 1)}, "greater than or equal"),
        ({"TASKPOST_S3_ADDRESSING_STYLE": "sideways"}, "auto"),
    ],
    ids=["blob-dir-too", "key-id-alone", "too-many-parts", "part-too-small", "addressing-style"],
)
def test_s3_settings_that_cannot_work_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings_from(monkeypatch, {**S3_ENV, **env})


def test_empty_s3_settings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["BLOB_URL", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]
    settings = settings_from(monkeypatch, {f"TASKPOST_{name}": "" for name in names})
    assert settings == Settings(_env_file=None)
    assert isinstance(blob_store_from_settings(settings), LocalBlobStore)


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiobotocore.session", None)  # as if aiobotocore were not installed
    with pytest.raises(ImportError, match=r"pip install 'taskpost\[s3\]'"):
        blob_store_from_settings(settings_from(monkeypatch, S3_ENV))
