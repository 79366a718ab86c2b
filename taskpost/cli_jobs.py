"""``taskpost jobs submit|show|list|watch|cancel|requeue|empty|outputs``: jobs, one at a time or in
bulk (``requeue --dead|--failed|--all``, ``empty --type``, like ``rq requeue`` and ``rq empty``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from taskpost import render
from taskpost.cli_common import (
    DEFAULT_SERVER_URL,
    ApiKey,
    AsJson,
    Namespace,
    ServerUrl,
    Yes,
    client,
    confirm,
    examples,
    fail,
    note,
)
from taskpost.client import WaitTimedOut
from taskpost.protocol import JobPage, JobPublic, JobState, Priority
from taskpost.protocol.admin import BulkResult, RequeueableState

jobs_app = typer.Typer(help="Submit, inspect, follow, cancel and requeue jobs.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="The job's id.")]
TypeOption = Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")]

SUBMIT_EPILOG = examples(
    "taskpost jobs submit noop -p sleep_s=2 --wait",
    "taskpost jobs submit transcription -f speech.wav --priority high --wait --output-dir out/",
    "taskpost jobs submit noop --delay 30m        (or --run-at 2026-12-03T08:00:00Z)",
    "taskpost submit noop                         (the same command, shorter)",
    "taskpost submit transcription -p url=https://example.org/talk.mp3 --then analyze \\\n"
    '    --then-param \'analyze.prompts={"summary": "Summarise the talk"}\' --wait',
)


def submit(
    job_type: Annotated[str, typer.Argument(help="The job type, e.g. noop or transcription.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="key=value (value parsed as JSON when it can be)."),
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="An input file, uploaded with the job (repeatable)."),
    ] = None,
    priority: Annotated[Priority, typer.Option(help="high, default or low.")] = Priority.DEFAULT,
    run_at: Annotated[
        str | None, typer.Option(help="Not before this time, ISO 8601 with a zone: 2026-12-03T08:00:00Z.")
    ] = None,
    delay: Annotated[
        str | None, typer.Option(help="Not before this long from now: 90 (seconds), 30m, 2h.")
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="Take the result of an equal completed job (same type, params and inputs), if there is one.",
            show_default=False,
        ),
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="POSTed a signed summary (X-Taskpost-Signature) when the job ends.")
    ] = None,
    then: Annotated[
        list[str] | None,
        typer.Option(
            "--then",
            help="A job type to run on this job's outputs when it completes (repeatable: a sequence).",
        ),
    ] = None,
    then_param: Annotated[
        list[str] | None,
        typer.Option(
            "--then-param",
            "-P",
            help="STEP.key=value: a param of the --then step STEP (its type or position).",
        ),
    ] = None,
    then_json: Annotated[
        str | None,
        typer.Option("--then-json", help="The whole then list as JSON, for fan-out and step options."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            help="Wait for the job (and its chain) to end, saying where it is; exit 1 unless all completed."
        ),
    ] = False,
    wait_timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
    output_dir: Annotated[Path | None, typer.Option(help="With --wait: save the outputs here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the job always is).")] = True,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Submit a job and print it as JSON (with --wait, once it ended); warnings go to stderr."""
    from taskpost import submit as submitting

    params = submitting.parse_params(param or [])
    files = submitting.checked_files(file or [])
    when, delay_s = submitting.parse_run_at(run_at), submitting.parse_delay(delay)
    chain = submitting.parse_chain(then or [], then_param or [], then_json)
    with client(server_url, api_key) as opened:
        job = submitting.submit_and_wait(
            opened, job_type, params, files,
            priority=priority, run_at=when, delay_s=delay_s, cache=cache, webhook_url=webhook_url,
            then=chain, wait=wait, wait_timeout_s=wait_timeout, output_dir=output_dir, echo=note,
        )  # fmt: skip
    typer.echo(job.model_dump_json(indent=2))
    if wait and job.state is not JobState.COMPLETED:
        raise typer.Exit(1)


jobs_app.command("submit", epilog=SUBMIT_EPILOG)(submit)


def _print_job(job: JobPublic, as_json: bool) -> None:
    if as_json:
        typer.echo(render.as_json(job))
    else:
        render.show(render.job_table(job))


@jobs_app.command(
    "show", epilog=examples("taskpost jobs show <job id>", "taskpost jobs show <job id> --json | jq .result")
)
def jobs_show(
    job_id: JobId, as_json: AsJson = False, server_url: ServerUrl = DEFAULT_SERVER_URL, api_key: ApiKey = None
) -> None:
    """One job: state, attempts, progress, parameters, error, outputs and result."""
    with client(server_url, api_key) as opened:
        _print_job(opened.get(job_id), as_json)


@jobs_app.command(
    "list",
    epilog=examples(
        "taskpost jobs list --state dead --type transcription",
        "taskpost jobs list --limit 50 --cursor <next page's cursor>",
        "taskpost jobs list --state completed --all-pages --json | jq '.jobs | length'",
    ),
)
def jobs_list(
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    job_type: TypeOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Jobs per page.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Start at this page (a page ends by naming the next).")
    ] = None,
    all_pages: Annotated[bool, typer.Option("--all-pages", help="Every page, not only the first.")] = False,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Jobs newest first, a page at a time (JSON: ``{"jobs": [...], "next_cursor": ...}``)."""
    with client(server_url, api_key) as opened:
        page = opened.list_page(state, job_type, limit=limit, cursor=cursor)
        jobs = list(page.jobs)
        while all_pages and page.next_cursor is not None:
            page = opened.list_page(state, job_type, limit=limit, cursor=page.next_cursor)
            jobs += page.jobs
    shown = JobPage(jobs=jobs, next_cursor=page.next_cursor)
    if as_json:
        typer.echo(render.as_json(shown))
    else:
        render.show(render.jobs_table(shown.jobs, shown.next_cursor))


@jobs_app.command(
    "watch",
    epilog=examples(
        "taskpost jobs watch <job id>                 (a progress bar; exit 0 if it completed)",
        "taskpost jobs watch <job id> --json          (one JSON line per change)",
    ),
)
def jobs_watch(
    job_id: JobId,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds (exit 1).")] = None,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow a job until it ends: its state, progress and the handler's message; exit 1 unless it
    completed."""
    from taskpost import watch

    show = watch.watch_json if as_json else (watch.watch_live if render.is_terminal() else watch.watch_plain)
    with client(server_url, api_key) as opened:
        try:
            job = show(watch.follow(opened, job_id, timeout))
        except WaitTimedOut as exc:
            fail(f"still {exc.job.state.value} after {timeout:g} s" if exc.job else str(exc))
    if job.state is not JobState.COMPLETED:
        raise typer.Exit(1)


@jobs_app.command("cancel", epilog=examples("taskpost jobs cancel <job id>"))
def jobs_cancel(
    job_id: JobId, as_json: AsJson = False, server_url: ServerUrl = DEFAULT_SERVER_URL, api_key: ApiKey = None
) -> None:
    """Cancel a job: a queued one at once, a running one when its agent hears of it."""
    with client(server_url, api_key) as opened:
        job = opened.cancel(job_id)
    if as_json:
        typer.echo(render.as_json(job))
    else:
        asked = " (its agent is told to stop)" if job.cancel_requested and not job.state.is_terminal else ""
        typer.echo(f"job {job.id} {job.state.value}{asked}")


def _bulk(call: Callable[[], BulkResult]) -> BulkResult:
    """Call until the coordinator says there are no more (each call changes at most 1000 jobs)."""
    count = 0
    while True:
        result = call()
        count += result.count
        if not result.more or result.count == 0:
            return BulkResult(dry_run=False, count=count, more=result.more)


def _jobs(count: int, more: bool) -> str:
    return f"{count}{' or more' if more else ''} job{'' if count == 1 and not more else 's'}"


def _requeue_states(dead: bool, failed: bool, every: bool) -> list[RequeueableState]:
    if every:
        return list(RequeueableState)
    return [s for s, asked in ((RequeueableState.FAILED, failed), (RequeueableState.DEAD, dead)) if asked]


@jobs_app.command(
    "requeue",
    epilog=examples(
        "taskpost jobs requeue <job id>",
        "taskpost jobs requeue --dead --type transcription     (asks first)",
        "taskpost jobs requeue --all --yes                     (failed, dead and cancelled)",
    ),
)
def jobs_requeue(
    job_id: Annotated[
        str | None, typer.Argument(help="The job's id (or use --dead, --failed, --all).")
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead job.")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Every job waiting to be retried.")] = False,
    every: Annotated[bool, typer.Option("--all", help="Every failed, dead and cancelled job.")] = False,
    job_type: TypeOption = None,
    namespace: Namespace = None,
    yes: Yes = False,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Put a job, or every failed, dead or cancelled job, back in the queue (like ``rq requeue``)."""
    states = _requeue_states(dead, failed, every)
    if (job_id is None) == (not states):
        raise typer.BadParameter(
            "give a job id, or --dead, --failed or --all (not both)", param_hint="JOB_ID"
        )
    with client(server_url, api_key) as opened:
        if job_id is not None:
            job = opened.requeue(job_id)
            typer.echo(render.as_json(job) if as_json else f"job {job.id} {job.state.value}")
            return
        preview = opened.requeue_jobs(states, job_type, dry_run=True, namespace=namespace)
        what = " or ".join(states) + (f" {job_type}" if job_type else "")
        if preview.count:
            confirm(f"Requeue {_jobs(preview.count, preview.more)} ({what})?", yes)
            done = _bulk(lambda: opened.requeue_jobs(states, job_type, namespace=namespace))
        else:
            done = BulkResult(dry_run=False, count=0)
    typer.echo(render.as_json(done) if as_json else f"requeued {_jobs(done.count, done.more)} ({what})")


@jobs_app.command(
    "empty",
    epilog=examples(
        "taskpost jobs empty --type transcription               (asks first)",
        "taskpost jobs empty --type noop --include-scheduled --yes",
    ),
)
def jobs_empty(
    job_type: Annotated[str, typer.Option("--type", help="The job type whose queue to empty.")],
    include_scheduled: Annotated[
        bool, typer.Option("--include-scheduled", help="Cancel its scheduled jobs as well.")
    ] = False,
    namespace: Namespace = None,
    yes: Yes = False,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel every queued job of a type (like ``rq empty``); running jobs are left alone."""
    with client(server_url, api_key) as opened:
        preview = opened.empty_queue(
            job_type, include_scheduled=include_scheduled, dry_run=True, namespace=namespace
        )
        which = "queued or scheduled" if include_scheduled else "queued"
        if preview.count:
            confirm(f"Cancel {_jobs(preview.count, preview.more)} {which} {job_type}?", yes)
            done = _bulk(
                lambda: opened.empty_queue(job_type, include_scheduled=include_scheduled, namespace=namespace)
            )
        else:
            done = BulkResult(dry_run=False, count=0)
    typer.echo(
        render.as_json(done) if as_json else f"cancelled {_jobs(done.count, done.more)} {which} {job_type}"
    )


@jobs_app.command(
    "outputs",
    epilog=examples("taskpost jobs outputs <job id>", "taskpost jobs outputs <job id> --dir out/"),
)
def jobs_outputs(
    job_id: JobId,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Download them into this directory.")
    ] = None,
    as_json: AsJson = False,
    server_url: ServerUrl = DEFAULT_SERVER_URL,
    api_key: ApiKey = None,
) -> None:
    """List a job's output files, or download them with --dir (each checked against its SHA-256)."""
    with client(server_url, api_key) as opened:
        if directory is None:
            outputs = opened.get(job_id).outputs
            if as_json:
                typer.echo(render.as_json(outputs))
            else:
                render.show(render.outputs_table(outputs))
            return
        saved = opened.download_outputs(job_id, directory)
    if as_json:
        typer.echo(json.dumps([str(path) for path in saved], indent=2))
    else:
        for path in saved:
            typer.echo(str(path))
