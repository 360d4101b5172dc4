"""The user's batch jobs (``jupyter_berth.jobs``): submit with the notebook in the request, list, read, cancel.

A job belongs to the Berth service, not to the server that sent it: in hub mode these routes are
forwarded to the hub's service like the others, so a job outlives the user's server and is listed
again at the next login. The notebook travels in the body (``content``: the notebook as JSON), so the
service needs no access to the user's files; the job's output notebook and log are read back here
(``/output``, ``/log``). Always the authenticated user's own jobs; another user's job is "not found".
"""

from __future__ import annotations

from jupyter_berth.errors import RequestError

from .base import BerthHandler, authorized, web

#: The fields of ``POST /berth/api/jobs``.
SUBMIT_FIELDS = (
    "notebook",
    "content",
    "parameters",
    "request",
    "preset",
    "image",
    "folders",
    "time_limit",
    "name",
    "job_id",
)


def parse_submit(body: dict) -> dict:
    """The submit body as ``JobManager.submit`` arguments; every refusal names its field."""
    unknown = sorted(set(body) - set(SUBMIT_FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"unknown field; a job takes {', '.join(SUBMIT_FIELDS)}")
    if "content" not in body:
        raise RequestError("content", "send the notebook itself (nbformat 4 JSON) as content")
    out = {"notebook": body.get("notebook") or "notebook.ipynb", "content": body["content"]}
    if not isinstance(out["notebook"], str):
        raise RequestError("notebook", "expected the notebook's file name, such as train.ipynb")
    for key in ("preset", "image", "name", "job_id"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise RequestError(key, "expected a string")
        out[key] = value or None
    request = body.get("request")
    if request is not None and not isinstance(request, dict):
        raise RequestError("request", 'expected resources such as {"cpu": 0.5, "mem": "512M"}')
    out["request"] = request or None
    folders = body.get("folders")
    if folders is not None and (not isinstance(folders, list) or not all(isinstance(f, str) for f in folders)):
        raise RequestError("folders", 'expected a list of folder references such as ["alice/data"]')
    out["folders"] = folders or None
    limit = body.get("time_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
        raise RequestError("time_limit", "expected a number of seconds")
    out["time_limit"] = limit
    out["parameters"] = body.get("parameters") or {}
    return out


def _offset(handler) -> int:
    raw = handler.get_query_argument("offset", "0")
    try:
        offset = int(raw)
    except ValueError:
        raise RequestError("offset", f"{raw!r} is not a byte offset (a whole number)") from None
    if offset < 0:
        raise RequestError("offset", "must be 0 or more")
    return offset


class JobsHandler(BerthHandler):
    """``GET /berth/api/jobs``: your jobs, newest first (queued ones with how many wait ahead);
    ``POST``: submit one (201 with the job)."""

    @web.authenticated
    @authorized
    async def get(self):
        status = self.get_query_argument("status", None)
        if status is not None and status not in ("queued", "running", "completed", "failed", "cancelled"):
            raise RequestError(
                "status", f"{status!r} is not a job status: queued, running, completed, failed, cancelled"
            )
        service = await self.berth.service()
        jobs = await service.jobs.list(self.berth.user, status)
        ahead = await service.jobs.waiting_ahead(self.berth.user) if any(j.queued for j in jobs) else {}
        listed = []
        for job in jobs:
            item = job.to_json()
            if job.queued:
                item["ahead"] = ahead.get(job.id)
            listed.append(item)
        self.write_json({"jobs": listed})

    @web.authenticated
    @authorized
    async def post(self):
        options = parse_submit(self.json_object())
        service = await self.berth.service()
        job = await service.jobs.submit(self.berth.user, self.berth.groups, **options)
        self.set_header("Location", f"{self.base_url}berth/api/jobs/{job.id}")
        self.write_json(job.to_json(), status=201)


class JobHandler(BerthHandler):
    """``GET /berth/api/jobs/<id>``: one of your jobs; ``DELETE``: cancel it (queued or running)."""

    @web.authenticated
    @authorized
    async def get(self, job_id):
        service = await self.berth.service()
        self.write_json((await service.jobs.get(self.berth.user, job_id)).to_json())

    @web.authenticated
    @authorized
    async def delete(self, job_id):
        service = await self.berth.service()
        self.write_json((await service.jobs.cancel(self.berth.user, job_id)).to_json())


class JobLogHandler(BerthHandler):
    """``GET /berth/api/jobs/<id>/log?offset=N``: the job's log from byte ``offset``."""

    @web.authenticated
    @authorized
    async def get(self, job_id):
        offset = _offset(self)
        service = await self.berth.service()
        text, following = await service.jobs.read_log(self.berth.user, job_id, offset)
        self.write_json({"text": text, "offset": following})


class JobOutputHandler(BerthHandler):
    """``GET /berth/api/jobs/<id>/output``: the output notebook (partial while the job runs)."""

    @web.authenticated
    @authorized
    async def get(self, job_id):
        service = await self.berth.service()
        self.write_json(await service.jobs.read_output(self.berth.user, job_id))


class JobOfferHandler(BerthHandler):
    """``GET /berth/api/job-environments``: what you may run as a job (the Create-job dialog's offer):
    the images your policy allows, the presets that fit it and your default request."""

    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json(await service.jobs.offer(self.berth.user, self.berth.groups))


ROUTES = [
    (r"/berth/api/job-environments", JobOfferHandler),
    (r"/berth/api/jobs", JobsHandler),
    (r"/berth/api/jobs/(?P<job_id>[\w-]+)", JobHandler),
    (r"/berth/api/jobs/(?P<job_id>[\w-]+)/log", JobLogHandler),
    (r"/berth/api/jobs/(?P<job_id>[\w-]+)/output", JobOutputHandler),
]
