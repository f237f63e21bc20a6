"""The report scheduler: due cron slots, claimed once in the warehouse, run, emailed.

Slots live in :mod:`~auterity.reports.slots`, the emails and SMTP checks in
:mod:`~auterity.reports.job_email`; both are re-exported here.

Design
------
*When* a job fires is APScheduler's cron trigger (:meth:`auterity.schedule.Job.trigger`,
daylight-saving changes included); *what has run* lives in the warehouse, so it survives
restarts and is shared by every process that schedules:

* ``schedule_slots`` holds one row per cron slot ``(job, scheduled_for)`` a scheduler took
  on. Claiming a slot is an insert under the primary key, after checking in the same write
  transaction that no later slot of the job is taken, so ``auterity schedule run`` (the
  daemon) and ``auterity schedule run-due`` (system cron) never both run one slot.
* A job is known from the first time a scheduler sees it (``warehouse_meta`` key
  ``schedule.since.<job>``): slots before that are not "missed".
* Catch-up: the due slot of a job is the *latest* fire time after its last claimed slot,
  if it is at most ``grace`` seconds old. Several fire times missed while no scheduler ran
  are coalesced into that one run; older ones are dropped (and logged).
* Cut-short runs: a claim names its process (``host:pid``) and its ``attempt``. A slot
  still claimed (or recorded interrupted) by a process of this host that is gone was cut
  short; the next scheduler takes it over with a compare-and-set on that row
  (:meth:`Scheduler.recover`): within ``grace`` of its fire time and on its first attempt
  it runs again (attempt 2); otherwise it ends ``lost`` and the job's failure recipients
  get the failure email. So a slot runs at most twice, never by two schedulers at once.

APScheduler 3's own persistent job store is not used: it pickles jobs, keeps a pooled
connection on the database (a DuckDB file allows one writer process) and, as its FAQ says,
must not be shared by two processes - which is exactly what ``run`` and ``run-due`` do.

The core is clock-free and synchronous (:meth:`Scheduler.due`, :meth:`Scheduler.run_due`,
:meth:`Scheduler.tick` take ``now``), so tests drive it with any time; the daemon
(:meth:`Scheduler.serve_forever`) is a thin loop around :meth:`Scheduler.tick`.

Every run is a ``report_runs`` row (trigger ``schedule`` or ``manual``, ``job_id``,
``scheduled_for``) with its delivery status:

``sent``              the report email went out
``skipped``           the job's condition said not to send (e.g. no anomalies)
``delivery_failed``   SMTP refused or was unreachable after retries (reason recorded)
``failure_sent``      the notebook failed; the failure email went to ``failure_to``
``failure_not_sent``  the notebook failed and the job has no failure recipients
``retried``           the run was cut short and its slot ran again
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from auterity import config, metrics, reports, warehouse
from auterity.errors import AuterityError, ConfigError
from auterity.redact import mask_secrets
from auterity.reports import mailer
from auterity.reports.job_email import (
    Headline,
    build_failure_email,
    build_interrupted_email,
    build_job_email,
    check_smtp_server,
    check_smtp_settings,
    headline,
)
from auterity.reports.prometheus import SchedulerMetrics
from auterity.reports.schedule import Job, Schedule, evaluate_condition
from auterity.reports.slots import (
    DELIVERY_STATUSES,
    MAX_ATTEMPTS,
    SINCE_KEY,
    Clock,
    Slot,
    aware_utc,
    claim,
    finish_slot,
    fire_times,
    first_fire_after,
    job_state,
    naive_utc,
    slot_history,
    slot_run,
    stranded_slots,
    take_over,
    utc_now,
)
from auterity.warehouse import retention

log = logging.getLogger("auterity.reports.scheduler")

RETENTION_EVERY_S = 24 * 3600.0
"""How often the daemon applies ``AUTERITY_RETENTION_DAYS`` (and once when it starts)."""


ENV_GRACE = config.ENV_SCHEDULE_GRACE


ENV_MAX_PARALLEL = config.ENV_SCHEDULE_MAX_PARALLEL


@dataclass(frozen=True)
class SchedulerSettings:
    """How the scheduler behaves (from the environment, or given by the CLI/tests)."""

    grace_s: float = 3600.0
    max_parallel: int = 2
    smtp_attempts: int = 4
    smtp_backoff_s: float = 2.0

    @classmethod
    def from_env(cls) -> SchedulerSettings:
        """``AUTERITY_SCHEDULE_GRACE`` (seconds) and ``AUTERITY_SCHEDULE_MAX_PARALLEL``."""
        return cls(
            grace_s=config.seconds(ENV_GRACE),
            max_parallel=config.count(ENV_MAX_PARALLEL, "concurrent runs"),
        )


@dataclass
class Outcome:
    """How one run of a job ended: run status and delivery status."""

    job: str
    scheduled_for: datetime | None
    run_id: str | None
    status: str
    delivery_status: str | None = None
    delivery_error: str | None = None
    error_message: str | None = None
    duration_s: float | None = None


class Scheduler:
    """Runs a schedule's jobs: due slots from cron triggers and warehouse state.

    Parameters
    ----------
    schedule : Schedule
        The jobs (:func:`auterity.schedule.load_schedule`).
    url : str, optional
        Warehouse URL (state and run records).
    settings : SchedulerSettings, optional
        Grace period, concurrency, SMTP retries (default: from the environment).
    clock : callable, optional
        Returns "now" as an aware datetime (tests pass a fake clock).
    metrics : SchedulerMetrics, optional
        Where runs are counted (default: a fresh registry).
    pdf : bool
        Produce PDFs for jobs that attach one (needs Chromium).
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        url: str | None = None,
        settings: SchedulerSettings | None = None,
        clock: Clock = utc_now,
        metrics: SchedulerMetrics | None = None,
        pdf: bool = True,
    ) -> None:
        self.schedule = schedule
        self.url = url
        self.settings = settings or SchedulerSettings.from_env()
        self.clock = clock
        self.metrics = metrics or SchedulerMetrics()
        self.pdf = pdf
        self._free = threading.Semaphore(self.settings.max_parallel)
        self._workers: dict[threading.Thread, Slot] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self.outcomes: list[Outcome] = []
        warehouse.ensure_schema(url)

    # -- deciding -------------------------------------------------------------

    def due(self, now: datetime | None = None) -> list[Slot]:
        """The slots due at ``now``: per enabled job, the latest unclaimed fire time in grace.

        Registers jobs seen for the first time (nothing before that is due).
        """
        now = now or self.clock()
        last, since = job_state(self.url)
        grace = timedelta(seconds=self.settings.grace_s)
        enabled = [j for j in self.schedule.jobs.values() if j.enabled]
        moved: dict[str, datetime] = {j.name: now for j in enabled if j.name not in since}
        out = []
        for job in enabled:
            after = max(since.get(job.name, now), last.get(job.name, since.get(job.name, now)))
            missed = first_fire_after(job, after)
            if missed is not None and missed <= now - grace:
                # Too late to run: log once, and start counting from the grace window.
                log.warning(
                    "%s: run(s) from %s on missed by more than the %.0f s grace period; not run",
                    job.name,
                    missed.isoformat(),
                    self.settings.grace_s,
                )
                moved[job.name] = now - grace
                after = now - grace
            window = fire_times(job, after, now)
            if window:
                if len(window) > 1:
                    log.info("%s: %d missed runs coalesced into one", job.name, len(window))
                out.append(Slot(job, window[-1]))
        if moved:
            with warehouse.connect(self.url, write=True) as conn:
                for name, moment in moved.items():
                    warehouse.set_meta(conn, SINCE_KEY + name, moment.isoformat())
        return out

    # -- running --------------------------------------------------------------

    def execute(
        self, job: Job, *, trigger: str = "schedule", scheduled_for: datetime | None = None
    ) -> Outcome:
        """Run one job now and deliver its email; never raises for a job's own failure."""
        started = time.monotonic()
        self.metrics.in_progress.inc()
        try:
            return self._execute(job, trigger, scheduled_for)
        except Exception as exc:  # a broken job must never take the scheduler down
            if isinstance(exc, AuterityError):
                message = mask_secrets(str(exc))
                log.error("job %s could not run: %s", job.name, message)
            else:
                message = mask_secrets(f"{type(exc).__name__}: {exc}")
                log.exception("job %s could not run", job.name)
            outcome = Outcome(job.name, scheduled_for, None, "error", error_message=message)
            outcome.duration_s = round(time.monotonic() - started, 3)
            self.metrics.observe(job.name, "error", outcome.duration_s, None)
            return outcome
        finally:
            self.metrics.in_progress.dec()

    def _execute(self, job: Job, trigger: str, scheduled_for: datetime | None) -> Outcome:
        """Run, deliver, record, count."""
        record = reports.run(
            job.notebook,
            params_file=job.parameters_file,
            trigger=trigger,
            job_id=job.name,
            pdf=self.pdf and "pdf" in job.attachments,
            url=self.url,
            scheduled_for=naive_utc(scheduled_for) if scheduled_for else None,
            as_user=job.as_user,
        )
        with metrics.acting_as(job.as_user, url=self.url):  # the email shows what they see
            status, error = self.deliver(job, record)
        reports.record_delivery(record.run_id, status, error, url=self.url)
        self.metrics.observe(job.name, record.status, record.duration_s, status, record.finished_at)
        log.info("job %s: run %s %s, email %s", job.name, record.run_id, record.status, status)
        return Outcome(
            job.name,
            scheduled_for,
            record.run_id,
            record.status,
            status,
            error,
            record.error_message,
            record.duration_s,
        )

    def deliver(
        self, job: Job, record: reports.RunRecord, *, not_rerun: str | None = None
    ) -> tuple[str, str | None]:
        """Send the run's email (or the failure email): ``(delivery status, reason)``.

        ``not_rerun`` says why an interrupted run is not run again: the failure email
        then reports the interruption.
        """
        try:
            settings = mailer.smtp_settings()
            if not_rerun is not None:
                if not job.failure_to:
                    return "failure_not_sent", "the job has no failure_to recipients"
                built = build_interrupted_email(job, record, not_rerun, settings=settings)
            elif record.ok:
                send, reason = evaluate_condition(job, record.values)
                if not send:
                    return "skipped", reason
                built = build_job_email(job, record, url=self.url, settings=settings)
            else:
                if not job.failure_to:
                    return "failure_not_sent", "the job has no failure_to recipients"
                built = build_failure_email(job, record, settings=settings)
            mailer.send(
                built.message,
                settings=settings,
                bcc=job.bcc if record.ok else (),
                attempts=self.settings.smtp_attempts,
                backoff_s=self.settings.smtp_backoff_s,
            )
        except Exception as exc:  # SMTP down, bad settings, a condition without its value
            reason = mask_secrets(str(exc) if isinstance(exc, AuterityError) else repr(exc))
            log.warning("job %s: email not delivered: %s", job.name, reason)
            return "delivery_failed", reason
        if not record.ok:
            return "failure_sent", None
        return "sent", (f"not attached: {', '.join(built.dropped)}" if built.dropped else None)

    def recover(
        self, now: datetime | None = None, *, limit: int | None = None
    ) -> tuple[list[Slot], list[Outcome]]:
        """Take over the slots whose run was cut short (:func:`stranded_slots`).

        A slot on its first attempt whose fire time is at most the grace period old is
        taken over as attempt 2, to be run again (at most ``limit`` of them: the free
        workers; the others wait for the next call). Any other is marked ``lost``, and the
        job's failure recipients get the failure email, recorded as the delivery status of
        the interrupted run. A slot whose run had in fact finished and been delivered is
        only closed. Taking a slot over is a compare-and-set on its row, so a slot is re-run
        or reported by one scheduler only, once.

        Returns
        -------
        (list of Slot, list of Outcome)
            The slots this call took over to run again (the caller runs them), and the
            outcomes of the slots it reported lost.
        """
        stranded = stranded_slots(self.url)
        if not stranded:
            return [], []
        now = now or self.clock()
        reports.recover_interrupted(self.url)  # close the cut-short runs' records first
        grace = timedelta(seconds=self.settings.grace_s)
        again: list[Slot] = []
        lost: list[Outcome] = []
        for row in stranded:
            job = self.schedule.jobs.get(row.job_name)
            if job is None or not job.enabled:
                continue  # not this schedule's to run any more: left as it is
            slot = Slot(job, aware_utc(row.scheduled_for), row.attempt)
            run = slot_run(job.name, row.scheduled_for, self.url)
            if run is not None and run.status == "ok" and run.delivery_status:
                if take_over(
                    row, "done", row.attempt, "finished before its process ended", self.url
                ):
                    finish_slot(slot, "done", run.run_id, None, self.url)
                continue
            if row.attempt >= MAX_ATTEMPTS:
                why = "was not run again: it had already been run again once"
            elif now - slot.scheduled_for > grace:
                why = (
                    "was not run again: no scheduler was back within the "
                    f"{self.settings.grace_s:.0f} s grace period (AUTERITY_SCHEDULE_GRACE); "
                    f"it was {(now - slot.scheduled_for).total_seconds():.0f} s late"
                )
            else:
                if limit is not None and len(again) >= limit:
                    continue
                retry = Slot(job, slot.scheduled_for, row.attempt + 1)
                cut = run.error_message if run is not None else None
                detail = f"attempt {retry.attempt} after: {cut or 'its process ended'}"
                if take_over(row, "claimed", retry.attempt, detail, self.url):
                    if run is not None:
                        reports.record_delivery(
                            run.run_id,
                            "retried",
                            f"run again (attempt {retry.attempt})",
                            url=self.url,
                        )
                    log.warning(
                        "%s: the %s run was cut short; running it again",
                        job.name,
                        slot.scheduled_for.isoformat(),
                    )
                    again.append(retry)
                continue
            if take_over(row, "lost", row.attempt, why, self.url):
                lost.append(self._report_lost(slot, run, why))
        return again, lost

    def _report_lost(self, slot: Slot, run: Any, why: str) -> Outcome:
        """Send (and record) the failure email of a slot that is not run again."""
        job = slot.job
        naive = naive_utc(slot.scheduled_for)
        run_id = (
            run.run_id
            if run is not None
            else reports.record_unstarted_run(
                job.notebook,
                job.parameter_set,
                job_id=job.name,
                scheduled_for=naive,
                reason="the scheduler running it ended before the notebook started",
                url=self.url,
            )
        )
        record = reports.get_run(run_id, self.url)
        status, error = self.deliver(job, record, not_rerun=why)
        reports.record_delivery(run_id, status, error, url=self.url)
        finish_slot(slot, "lost", run_id, why, self.url)
        self.metrics.observe(job.name, "failed", None, status)
        log.warning(
            "%s: the %s run was cut short and %s; email %s",
            job.name,
            slot.scheduled_for.isoformat(),
            why,
            status,
        )
        outcome = Outcome(
            job.name, slot.scheduled_for, run_id, "failed", status, error, record.error_message
        )
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def _run_slot(self, slot: Slot) -> Outcome:
        """Execute a claimed slot and close it."""
        outcome = self.execute(slot.job, scheduled_for=slot.scheduled_for)
        state = "error" if outcome.status == "error" else "done"
        try:
            finish_slot(slot, state, outcome.run_id, outcome.error_message, self.url)
        except Exception:  # the run is recorded; a lost slot update must not crash a worker
            log.exception("could not close slot %s %s", slot.job.name, slot.scheduled_for)
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def run_due(self, now: datetime | None = None) -> list[Outcome]:
        """Run whatever is due once (claimed first), at most ``max_parallel`` at a time.

        Slots cut short by a scheduler that died are dealt with first (:meth:`recover`):
        run again, or reported lost.

        Returns
        -------
        list of Outcome
            One per slot this call claimed and ran, or reported lost; slots already taken
            by another scheduler are left alone.

        Raises
        ------
        ConfigError
            SMTP settings unusable (:func:`check_smtp_settings`): nothing has run.
        """
        check_smtp_settings(j for j in self.schedule.jobs.values() if j.enabled)
        again, lost = self.recover(now)
        claimed = again + [s for s in self.due(now) if claim(s, url=self.url)]
        if not claimed:
            return lost
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.settings.max_parallel) as pool:
            return lost + list(pool.map(self._run_slot, claimed))

    def trigger(
        self, name: str, *, check_server: bool = True, as_user: str | None = None
    ) -> Outcome:
        """Run one job now (trigger ``manual``), delivery included; takes no slot.

        The SMTP settings are checked first and, with ``check_server``, the server too
        (connection, TLS, login): a report is not run for an email that cannot go out.
        ``as_user`` runs it as that user instead of the job's ``as:`` (the run, its
        email and attachments show what they may see; their role must grant the
        notebook, and their runs-per-minute limit counts).

        Raises
        ------
        ConfigError
            Unknown job, or SMTP settings or server unusable (nothing has run).
        """
        job = self.schedule.job(name)
        if as_user is not None:
            reports.check_may_run(as_user, job.notebook, url=self.url)  # before anything runs
            job = replace(job, as_user=as_user)
        settings = check_smtp_settings([job])
        if check_server and settings is not None:
            check_smtp_server(settings)
        return self.execute(job, trigger="manual")

    # -- the daemon ------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Slot]:
        """Start every due slot there is a free worker for, in the background.

        Slots cut short by a scheduler that died come first (:meth:`recover`). A due slot
        without a free worker is not claimed: it stays due for the next tick (within the
        grace period), so concurrency is bounded without losing runs.

        Returns
        -------
        list of Slot
            The slots started.
        """
        if self._stop.is_set():
            return []
        started = []
        free = 0  # hold the free workers while cut-short slots are taken over
        while free < self.settings.max_parallel and self._free.acquire(blocking=False):
            free += 1
        try:
            again, _lost = self.recover(now, limit=free)
        except Exception:
            for _ in range(free):
                self._free.release()
            raise
        for slot in again:
            self._start(slot)
            started.append(slot)
        for _ in range(free - len(again)):
            self._free.release()
        for slot in self.due(now):
            if not self._free.acquire(blocking=False):
                log.info("all %d workers busy; %s waits", self.settings.max_parallel, slot.job.name)
                break
            if not claim(slot, url=self.url):
                self._free.release()
                continue
            self._start(slot)
            started.append(slot)
        return started

    def _start(self, slot: Slot) -> None:
        """Run a claimed slot in a worker thread (its worker is already taken)."""
        worker = threading.Thread(
            target=self._worker, args=(slot,), name=f"auterity-{slot.job.name}", daemon=True
        )
        with self._lock:
            self._workers[worker] = slot
        worker.start()

    def _worker(self, slot: Slot) -> None:
        """Thread body: run the slot, free the worker."""
        try:
            self._run_slot(slot)
        finally:
            with self._lock:
                self._workers.pop(threading.current_thread(), None)
            self._free.release()

    @property
    def busy(self) -> int:
        """Runs executing now."""
        with self._lock:
            return len(self._workers)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running slots to finish; True if none is left.

        Gives up early (False) after a second :meth:`stop`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                workers = list(self._workers)
            if not workers:
                return True
            left = 0.5 if deadline is None else deadline - time.monotonic()
            if left <= 0 or self._hurry.is_set():
                return False
            workers[0].join(timeout=min(left, 0.5))

    def next_wakeup(self, now: datetime) -> float:
        """Seconds until the earliest next fire time of an enabled job."""
        nexts = [
            fire
            for j in self.schedule.jobs.values()
            if j.enabled
            for fire in j.next_runs(1, after=now)
        ]
        if not nexts:
            return float("inf")
        return max(0.0, (min(nexts) - now).total_seconds())

    def stop(self) -> None:
        """Ask the daemon loop to stop (signal handlers call this).

        The first call lets running reports finish (up to the drain timeout); a second
        one stops waiting for them: they are recorded as interrupted.
        """
        if self._stop.is_set():
            self._hurry.set()
        self._stop.set()

    def apply_retention(self) -> dict[str, int] | None:
        """Purge raw events past ``AUTERITY_RETENTION_DAYS`` (nothing when unset); a
        failure is logged, not raised (the reports go on)."""
        try:
            days = retention.retention_days()
            if days is None:
                return None
            deleted = retention.purge(days, url=self.url, actor="scheduler")
        except Exception:
            log.exception("retention purge failed")
            return None
        log.info("retention: raw events older than %d days purged: %s", days, deleted)
        return deleted

    def serve_forever(self, *, poll_s: float = 30.0, drain_timeout_s: float = 3600.0) -> int:
        """The daemon: tick, sleep until the next fire time (at most ``poll_s``), repeat.

        After :meth:`stop` (SIGTERM), no new run starts; running ones get
        ``drain_timeout_s`` to finish (a second SIGTERM cuts that short), after which
        they are recorded as interrupted. Bad SMTP settings refuse the start
        (ConfigError); an SMTP server that does not answer is logged as a warning (it
        may be a passing outage, and deliveries retry).

        Returns
        -------
        int
            Runs recorded as interrupted (0 for a clean stop).
        """
        settings = check_smtp_settings(j for j in self.schedule.jobs.values() if j.enabled)
        if settings is not None:
            try:
                check_smtp_server(settings)
            except ConfigError as exc:  # may be a passing outage: deliveries retry later
                log.warning("%s; emails will be retried when runs finish", exc)
        log.info("scheduler started: %d job(s)", len(self.schedule.jobs))
        purged_at: float | None = None
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # e.g. the warehouse briefly busy: try again next time
                log.exception("scheduler tick failed")
            if purged_at is None or time.monotonic() - purged_at >= RETENTION_EVERY_S:
                purged_at = time.monotonic()
                self.apply_retention()
            now = self.clock()
            self._stop.wait(min(poll_s, max(0.5, self.next_wakeup(now))))
        log.info("stopping: waiting up to %.0f s for %d run(s)", drain_timeout_s, self.busy)
        if self.wait(drain_timeout_s):
            return 0
        interrupted = reports.mark_interrupted(
            "the scheduler stopped before the run finished", url=self.url
        )
        with self._lock:
            pending = list(self._workers.values())
        for slot in pending:
            finish_slot(slot, "interrupted", None, "the scheduler stopped first", self.url)
        names = ", ".join(slot.job.name for slot in pending)
        log.warning("stopped with run(s) of %s recorded as interrupted", names)
        return interrupted


def install_signal_handlers(scheduler: Scheduler) -> None:
    """SIGTERM and SIGINT stop the daemon cleanly (main thread only)."""
    import signal

    def handler(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        scheduler.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


__all__ = [
    "DELIVERY_STATUSES",
    "Headline",
    "Outcome",
    "Scheduler",
    "SchedulerSettings",
    "Slot",
    "build_failure_email",
    "build_interrupted_email",
    "build_job_email",
    "check_smtp_server",
    "check_smtp_settings",
    "claim",
    "fire_times",
    "headline",
    "install_signal_handlers",
    "slot_history",
    "stranded_slots",
    "utc_now",
]
