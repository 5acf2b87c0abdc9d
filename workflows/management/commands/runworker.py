"""`manage.py runworker`: execute queued workflow runs (workflows.worker) until stopped."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from workflows import worker


class Command(BaseCommand):
    help = "Execute queued workflow runs, each in its own tenant's context, until stopped."

    def add_arguments(self, parser):
        parser.add_argument(
            "--poll", type=float, default=None, help="Seconds between looks at an empty queue."
        )
        parser.add_argument(
            "--drain", action="store_true", help="Exit once the queue is empty (scripts, bench)."
        )

    def handle(self, *args, poll=None, drain=False, **options):
        stopping = []

        def stop(signum, frame):
            # The run in hand finishes its current step; its lease lets another worker go on.
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        name = worker.worker_name()
        self.stdout.write(f"worker {name} ready", ending="\n")
        self.stdout.flush()
        if drain:
            while not stopping and worker.run_once(name=name):
                pass
            return
        worker.run_forever(
            name=name,
            stop=lambda: bool(stopping),
            poll_seconds=settings.WORKER_POLL_SECONDS if poll is None else poll,
        )
