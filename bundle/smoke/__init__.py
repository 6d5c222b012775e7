"""`make smoke`: read-only checks of a running stack, local or reached over the network.

The expectations (jobs, rule groups, intervals, retention, receivers, datasources) come
from the values in use, through the rest of this package; what is running is read from
the services' own HTTP APIs with GET requests only (http.py refuses anything else), and
on the local host from `docker compose ps` and `docker volume inspect`. Nothing it does
creates, changes, silences, restarts or sends. `make smoke-notify` (notify.py) is the one
opt-in exception: it sends one synthetic alert to a receiver named for that purpose.

cli.py runs the checks (checks.py for the core, layer_checks.py for the optional layers)
and writes the report (report.py: one line per check, JUnit XML, JSON).
"""

# Exit codes of `make smoke` and `make smoke-notify` (README "Check a running stack").
PASSED = 0          # every check passed (skipped ones included)
FAILED = 1          # at least one check failed / smoke-notify: not delivered
UNUSABLE = 2        # could not run: bad arguments, invalid values, smoke-notify not set up
