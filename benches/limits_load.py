#!/usr/bin/env python3
"""Hammers one token through several instances and counts, per second,
the answers accepted (200) and refused (429), checking the RateLimit fields
of every answer. Used by benches/limits.sh.

usage: limits_load.py TOKEN CA_CERT URLS(comma-separated) SECS THREADS QUOTA WINDOW
prints one JSON object: per-second accepted counts and the checks' results."""
import http.client
import json
import ssl
import sys
import threading
import time
from urllib.parse import urlparse

token, ca, urls, secs, threads, quota, window = sys.argv[1:8]
secs, threads, quota, window = float(secs), int(threads), int(quota), int(window)
targets = [urlparse(u) for u in urls.split(",")]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
policy = f'"token";q={quota};w={window}'
lock = threading.Lock()
accepted, refused, other, bad_fields, errors = {}, 0, 0, [], 0
start = time.monotonic()
stop_at = start + secs


def worker(n):
    global refused, other, errors
    i = n
    conns = {}
    while time.monotonic() < stop_at:
        t = targets[i % len(targets)]
        i += 1
        try:
            c = conns.get(t.netloc)
            if c is None:
                c = http.client.HTTPSConnection(t.hostname, t.port, context=ctx, timeout=5)
                conns[t.netloc] = c
            c.request("GET", "/api/v1/external/orders", headers={"Authorization": f"Bearer {token}"})
            r = c.getresponse()
            r.read()
            now = time.monotonic()
        except Exception:
            conns.pop(t.netloc, None)
            with lock:
                errors += 1
            time.sleep(0.01)
            continue
        h = {k.lower(): v for k, v in r.getheaders()}
        problem = None
        if h.get("ratelimit-policy") != policy:
            problem = f"policy {h.get('ratelimit-policy')!r}"
        elif not h.get("ratelimit", "").startswith('"token";r='):
            problem = f"ratelimit {h.get('ratelimit')!r}"
        elif r.status == 429 and not h.get("retry-after", "").isdigit():
            problem = "429 without Retry-After"
        with lock:
            if problem and len(bad_fields) < 5:
                bad_fields.append(problem)
            if r.status == 200:
                s = int(now - start)
                accepted[s] = accepted.get(s, 0) + 1
            elif r.status == 429:
                refused += 1
            else:
                other += 1


ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({
    "accepted_per_second": [accepted.get(s, 0) for s in range(int(secs))],
    "refused": refused, "other": other, "errors": errors, "bad_fields": bad_fields,
}))
