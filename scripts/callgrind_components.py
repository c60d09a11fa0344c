"""Per-request instruction counts by component from two callgrind profiles of the proxy
(idle and under load): exclusive cost of every function, difference, divided by requests,
summed by the crate or library it belongs to. Used by scripts/profile-proxy."""
import re
import subprocess
import sys

# First match wins: scrubgate's own modules before the catch-all, libc's mem* by name.
COMPONENTS = [
    ("scrubgate::scrub", "scrubgate scrub engine"),
    ("scrubgate::json", "scrubgate JSON parse/serialize"),
    ("scrubgate::", "scrubgate other"),
    ("regex", "regex (detector scans)"),
    ("aho_corasick", "aho-corasick (echo pass)"),
    ("sha2", "sha2 (audit chain, HMAC)"),
    ("hmac", "sha2 (audit chain, HMAC)"),
    ("miniz", "deflate/inflate"),
    ("flate2", "deflate/inflate"),
    ("serde", "serde_json"),
    ("hyper", "hyper/http"),
    ("http", "hyper/http"),
    ("reqwest", "reqwest"),
    ("tokio", "tokio"),
    ("mi_", "mimalloc"),
    ("mimalloc", "mimalloc"),
    ("memset", "libc memset/memcpy/memcmp"),
    ("memcpy", "libc memset/memcpy/memcmp"),
    ("memmove", "libc memset/memcpy/memcmp"),
    ("memcmp", "libc memset/memcpy/memcmp"),
    ("memchr", "memchr"),
    ("hashbrown", "hashbrown"),
    ("core::", "std (inlined core/alloc)"),
    ("alloc::", "std (inlined core/alloc)"),
    ("std::", "std (inlined core/alloc)"),
]


def exclusive_costs(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
        capture_output=True, text=True, check=True,
    ).stdout
    costs = {}
    for line in out.split("-- Auto-annotated")[0].splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if not m or ":" not in m.group(2):
            continue
        name = re.sub(r" \[.*\]$", "", m.group(2))
        if not name.startswith("???"):
            name = name.split(":", 1)[1]
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def component(function):
    for needle, label in COMPONENTS:
        if needle in function:
            return label
    return "other"


def main():
    idle, load, requests = exclusive_costs(sys.argv[1]), exclusive_costs(sys.argv[2]), int(sys.argv[3])
    per = {}
    for name in set(idle) | set(load):
        label = component(name)
        per[label] = per.get(label, 0) + (load.get(name, 0) - idle.get(name, 0)) / requests
    total = sum(per.values())
    print(f"| component | instructions per request | share |\n|---|---|---|")
    for label, cost in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {cost / 1000:,.0f} k | {100 * cost / total:.1f} % |")
    print(f"| **total** ({requests} requests) | **{total / 1e6:.2f} M** | |")


if __name__ == "__main__":
    main()
