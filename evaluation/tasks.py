"""S-7 runs on the `default` queue (the gpu workers serve the items they ask). The task takes a run id."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(name="evaluation.tasks.evalrun_execute", bind=True, autoretry_for=(OperationalError, InterfaceError),
             retry_backoff=2, retry_backoff_max=60, max_retries=5, soft_time_limit=540, time_limit=600)
def evalrun_execute_task(self, run_id: int) -> str:
    """Safe to run twice: the run is claimed with a lease. A batch that ran out of time queues the next one;
    a delivery that finds the run claimed (its first task died mid-item) looks again once the lease is over."""
    from evaluation.services import CLAIM_SECONDS, evalrun_enqueue, evalrun_execute

    outcome = evalrun_execute(run_id=run_id)
    if outcome == "more":
        evalrun_enqueue(run_id=run_id)
    elif outcome == "claimed":
        evalrun_enqueue(run_id=run_id, countdown=CLAIM_SECONDS + 5)
    return outcome
