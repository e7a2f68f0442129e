"""Cancel the model jobs of a request whose client went away.

Django's ASGI handler cancels the request's task when the client disconnects, but a sync view
(DRF) keeps running in its thread, blocked on the worker's answer, and the worker keeps
generating for nobody. The jobs a request starts are tracked in a context variable the view's
thread shares (inference.gateway.jobs_tracked); on cancellation, their cancel flags are set and
the worker stops at its next token.
"""

from __future__ import annotations

import asyncio
import contextlib

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from inference.serving import jobs_tracked


class CancelJobsOnDisconnectMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    async def __call__(self, request):
        from inference.gateway import jobs_cancel

        with jobs_tracked() as jobs:
            # Shielded: when Django cancels us on a disconnect, asgiref's sync_to_async would hold the
            # cancellation until the view's thread returns, which is when the worker has finished the
            # reply for nobody. The shield lets us act at once while the view runs on.
            view = asyncio.ensure_future(self.get_response(request))
            try:
                return await asyncio.shield(view)
            except asyncio.CancelledError:
                jobs.aborted = True  # a job the view thread sends from now on is cancelled at once
                if jobs:
                    await sync_to_async(jobs_cancel, thread_sensitive=False)(list(jobs))
                with contextlib.suppress(BaseException):
                    response = await view  # the view ends soon after its jobs stop; nothing is left running
                    # Nobody will send or close this response: close it here, which settles what a streamed
                    # reply reserved and withdraws its job (inference.serving.ChatStream.close).
                    await sync_to_async(response.close, thread_sensitive=False)()
                raise
