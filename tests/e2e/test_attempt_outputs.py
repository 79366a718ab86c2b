"""Outputs belong to an attempt, against a real coordinator and agent.

Attempt 1 is run over HTTP by the test (what an agent does), uploads two outputs and then goes
silent; its lease expires. A real agent runs attempt 2, which writes one output of the same
name. The job serves attempt 2's file only, and the coordinator's collector deletes attempt 1's
blobs from the blob directory.
"""

from __future__ import annotations

import hashlib

from tests.e2e.conftest import Cluster, wait_until


def _blob_files(cluster: Cluster) -> set[str]:
    return {p.name for p in (cluster.tmp_path / "data" / "blobs").rglob("*") if p.is_file()}


def test_a_lost_attempts_outputs_never_reach_the_job_and_are_deleted(cluster: Cluster) -> None:
    job = cluster.submit(params={"outputs": {"out.txt": "attempt two"}})
    worker = cluster.client(cluster.worker_key)
    worker_id = worker.post("/workers/register", json={"task_types": ["noop"]}).json()["worker_id"]
    [task] = worker.post(f"/workers/{worker_id}/claim", json={"max_tasks": 1, "wait_s": 0}).json()["tasks"]
    assert task["job_id"] == job["id"]
    for name, data in (("out.txt", b"attempt one"), ("partial.txt", b"half done")):
        put = worker.put(
            f"/tasks/{job['id']}/outputs/{name}",
            content=data,
            headers={
                "X-Lease-Token": task["lease_token"],
                "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
            },
        )
        assert put.status_code == 201, put.text
    first_attempt = _blob_files(cluster)
    assert len(first_attempt) == 2

    # Attempt 1 goes silent: its lease expires and the job is queued again for a real agent.
    wait_until(lambda: cluster.job(job["id"])["state"] == "queued", 30, "the lease to expire")
    cluster.start_agent()
    done = cluster.wait_job(job["id"], {"completed", "dead"})
    assert done["state"] == "completed" and done["attempts"] == 2, done
    assert [f["name"] for f in done["outputs"]] == ["out.txt"]
    assert cluster.http.get(f"/jobs/{job['id']}/outputs/out.txt").content == b"attempt two"
    assert cluster.http.get(f"/jobs/{job['id']}/outputs/partial.txt").status_code == 404
    wait_until(lambda: _blob_files(cluster).isdisjoint(first_attempt), 30, "attempt 1's blobs to be deleted")
    assert len(_blob_files(cluster)) == 1  # attempt 2's out.txt, nothing else
