"""Reports: parameterised notebook runs, their records, email, schedules and the scheduler.

The run, render and record functions are re-exported here (``reports.run(...)``).

* :mod:`~auterity.reports.runner`: run a notebook with Papermill, record values, mask what
  is written;
* :mod:`~auterity.reports.render`: the HTML report and its PDF;
* :mod:`~auterity.reports.runs`: run records, recovery, retention and the index page;
* :mod:`~auterity.reports.params`: the parameter contract of each notebook;
* :mod:`~auterity.reports.mailer`: the mail-client-safe summary email;
* :mod:`~auterity.reports.schedule`: ``parameters/schedule.yml``;
* :mod:`~auterity.reports.scheduler`: the daemon that runs due jobs;
* :mod:`~auterity.reports.prometheus`: the scheduler's metrics.
"""

from auterity.reports.render import (
    CHROMIUM_ARGS,
    ENV_CHROMIUM,
    PDF_ARGS,
    REPORT_CSP,
    REPORT_ORIGIN,
    TEMPLATES,
    VALUES_MIME,
    chromium_path,
    chromium_sandbox,
    render_html,
    render_pdf,
    report_title,
)
from auterity.reports.runner import (
    MASKED_SCHEME,
    check_may_run,
    mask_notebook,
    record_value,
    recorded_values,
    run,
    run_all,
)
from auterity.reports.runs import (
    RunRecord,
    get_run,
    keep_runs,
    list_runs,
    mark_interrupted,
    process_alive,
    prune,
    record_delivery,
    record_end,
    record_start,
    record_unstarted_run,
    recover_interrupted,
    write_index,
)

__all__ = [
    "CHROMIUM_ARGS",
    "ENV_CHROMIUM",
    "MASKED_SCHEME",
    "PDF_ARGS",
    "REPORT_CSP",
    "REPORT_ORIGIN",
    "TEMPLATES",
    "VALUES_MIME",
    "RunRecord",
    "check_may_run",
    "chromium_path",
    "chromium_sandbox",
    "get_run",
    "keep_runs",
    "list_runs",
    "mark_interrupted",
    "mask_notebook",
    "process_alive",
    "prune",
    "record_delivery",
    "record_end",
    "record_start",
    "record_unstarted_run",
    "record_value",
    "recorded_values",
    "recover_interrupted",
    "render_html",
    "render_pdf",
    "report_title",
    "run",
    "run_all",
    "write_index",
]
