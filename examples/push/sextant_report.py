"""Report a trial's metrics to Sextant from inside the training script.

    from sextant_report import report
    report(step=3, accuracy=0.93, loss=0.2)

Standard library only: copy this one file next to your training script.

Where the metrics go depends on the environment Sextant gives the trial:

* ``SEXTANT_ENDPOINT`` set: they are POSTed to
  ``{SEXTANT_ENDPOINT}/v1/experiments/{SEXTANT_EXPERIMENT}/trials/{SEXTANT_TRIAL}/metrics`` with
  ``Authorization: Bearer {SEXTANT_TOKEN}``. ``SEXTANT_EXPERIMENT`` may be left out: it is the
  trial's name without its ``-NNNN`` suffix. Connection errors and 408/429/5xx answers are retried
  a few times over about three seconds; any other refusal raises ``SextantReportError`` with the
  server's message, since sending the same thing again would be refused again.
* ``SEXTANT_ENDPOINT`` unset: one line ``step=3 accuracy=0.93 loss=0.2`` is printed to stdout
  instead, which Katib's StdOut collector, Sextant's local runner and ``sextant-collector`` all
  read. So the same script runs with either collector, and by hand.

Without ``step``, each metric counts its own steps from 1, as the StdOut collector does, so both
paths give the same curve.
"""

import datetime
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request

__all__ = ["report", "SextantReportError"]

# Waits before each retry, in seconds: a server restart is usually over within these ~3 s, and a
# training step is not held up for longer than that.
RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6)
# Seconds to wait for one answer; the server answers after an fsync.
REQUEST_TIMEOUT = 10
# Statuses that may succeed when sent again (the server's contract: 408, 429 and 5xx, which say
# the server, not the request, failed). Every other refusal would be refused again.
RETRYABLE_STATUSES = frozenset([408, 429]) | frozenset(range(500, 600))

_sequence = {}


class SextantReportError(RuntimeError):
    """The metrics could not be delivered; the message says why and what to fix."""


def report(step=None, **metrics):
    """Report metric values, e.g. ``report(step=3, accuracy=0.93, loss=0.2)``.

    ``step`` is a non-negative integer (epoch, iteration); without it each metric counts its own
    steps from 1. Values must be finite numbers: NaN and infinity are refused here, before
    anything is sent, because the server would refuse the whole batch.
    """
    if not metrics:
        raise ValueError("report() needs at least one metric, e.g. report(loss=0.2)")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ValueError("step must be a non-negative integer, got %r" % (step,))
    values = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("metric %s must be a number, got %r" % (name, value))
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("metric %s is %r; only finite numbers can be reported" % (name, value))
        values[name] = value

    steps = {}
    for name in values:
        _sequence[name] = _sequence.get(name, 0) + 1
        steps[name] = step if step is not None else _sequence[name]

    endpoint = os.environ.get("SEXTANT_ENDPOINT", "").strip()
    if not endpoint:
        _print_line(step, values)
        return
    _push(endpoint.rstrip("/"), values, steps)


def _print_line(step, values):
    parts = [] if step is None else ["step=%d" % step]
    parts += ["%s=%r" % (name, value) for name, value in values.items()]
    print(" ".join(parts), flush=True)


def _required(name, hint):
    value = os.environ.get(name, "").strip()
    if not value:
        raise SextantReportError("%s is not set: %s" % (name, hint))
    return value


def _target():
    trial = _required("SEXTANT_TRIAL", "the trial's name, e.g. my-experiment-0001")
    token = _required("SEXTANT_TOKEN", "the trial's bearer token")
    experiment = os.environ.get("SEXTANT_EXPERIMENT", "").strip()
    if not experiment:
        head, _, index = trial.rpartition("-")
        if not head or not index.isdigit():
            raise SextantReportError(
                "SEXTANT_EXPERIMENT is not set and SEXTANT_TRIAL=%r is not of the form "
                "{experiment}-{NNNN}; set SEXTANT_EXPERIMENT" % trial
            )
        experiment = head
    return experiment, trial, token


def _push(endpoint, values, steps):
    experiment, trial, token = _target()
    url = "%s/v1/experiments/%s/trials/%s/metrics" % (
        endpoint,
        urllib.request.quote(experiment, safe=""),
        urllib.request.quote(trial, safe=""),
    )
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = json.dumps(
        {
            "observations": [
                {"metricName": name, "value": value, "step": steps[name], "timestamp": now}
                for name, value in values.items()
            ]
        }
    ).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    last_problem = None
    for delay in RETRY_DELAYS + (None,):
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT):
                return
        except urllib.error.HTTPError as error:
            message = _server_message(error)
            if error.code not in RETRYABLE_STATUSES:
                raise SextantReportError(
                    "Sextant refused the metrics of trial %s (HTTP %d): %s"
                    % (trial, error.code, message)
                ) from None
            last_problem = "HTTP %d: %s" % (error.code, message)
        except (urllib.error.URLError, OSError) as error:
            last_problem = "cannot reach %s: %s" % (endpoint, getattr(error, "reason", error))
        if delay is not None:
            time.sleep(delay)
    raise SextantReportError(
        "could not deliver the metrics of trial %s after %d attempts (%s)"
        % (trial, len(RETRY_DELAYS) + 1, last_problem)
    )


def _server_message(error):
    """The ``error.message`` of a Sextant error body, else the body's start."""
    try:
        text = error.read().decode("utf-8", "replace")
    except Exception:  # the body is only for the message
        return error.reason or "no message"
    try:
        details = json.loads(text)["error"]
        message = details.get("message") or ""
        if details.get("field"):
            message += " (field %s)" % details["field"]
        return message or text[:200]
    except (ValueError, KeyError, TypeError, AttributeError):
        return text.strip()[:200] or str(error.reason)


if __name__ == "__main__":
    # `python sextant_report.py loss=0.2 step=3`: report from a shell script.
    pairs = dict(arg.split("=", 1) for arg in sys.argv[1:])
    step_text = pairs.pop("step", None)
    report(
        step=None if step_text is None else int(step_text),
        **{name: float(value) for name, value in pairs.items()}
    )
