"""Memory readings shared by the benchmarks (Linux: getrusage and /proc/self/status)."""

import resource


def peak_rss_mib():
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def status_kib(field):
    """A ``/proc/self/status`` field in KiB (e.g. ``VmRSS``, ``VmHWM``), None if absent."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None
