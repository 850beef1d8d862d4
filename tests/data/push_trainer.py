"""A trial that sends its own metrics (collector kind Push), standard library only.

It reads what the server puts in every trial's environment (SEXTANT_ENDPOINT, SEXTANT_EXPERIMENT,
SEXTANT_TRIAL, SEXTANT_TOKEN, SEXTANT_METRICS) and POSTs three points of the objective metric,
whose smallest value is (x - 0.3)^2 + 0.1 / 3.
"""

import json
import os
import sys
import urllib.request

x = float(sys.argv[1])
endpoint = os.environ["SEXTANT_ENDPOINT"]
experiment = os.environ["SEXTANT_EXPERIMENT"]
trial = os.environ["SEXTANT_TRIAL"]
token = os.environ["SEXTANT_TOKEN"]
metric = os.environ["SEXTANT_METRICS"].split(",")[0]

points = [
    {"metricName": metric, "value": (x - 0.3) ** 2 + 0.1 / step, "step": step}
    for step in (1, 2, 3)
]
request = urllib.request.Request(
    f"{endpoint}/v1/experiments/{experiment}/trials/{trial}/metrics",
    data=json.dumps({"observations": points}).encode(),
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    method="POST",
)
# The server is on loopback: never go through a proxy from the environment.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(request, timeout=30) as reply:
    answer = json.load(reply)
if answer.get("accepted") != len(points):
    sys.exit(f"unexpected reply: {answer}")
print(f"pushed {len(points)} points of {metric}")
