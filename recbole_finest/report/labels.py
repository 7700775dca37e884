"""Display names of metrics, methods and perturbation ratios; the keys of a study group."""

ACCURACY = ("mrr", "recall@10", "ndcg@10")
LABELS = {"rbo": "RBO", "mrr": "MRR", "recall@10": "Recall@10", "ndcg@10": "NDCG@10"}
GROUP_KEYS = ("model", "selection", "kind", "ratio")


def _at_keys(keys, name):
    """The keys ``<name>@<k>`` among ``keys``, by k."""
    prefix = name + "@"
    return sorted({k for k in keys if k.startswith(prefix) and k[len(prefix):].isdigit()},
                  key=lambda k: int(k[len(prefix):]))


def stability_keys(keys):
    """``("rbo", "frbo@<k>", ..., "jaccard@<k>", ...)``: RBO, every FRBO@k and every Jaccard@k among
    ``keys`` by k (the k are the run's ``frbo_k`` / ``jaccard_k``, read off the results rather than
    assumed to be 10; results written before FRBO existed have none)."""
    return ("rbo", *_at_keys(keys, "frbo"), *_at_keys(keys, "jaccard"))


def metric_keys(keys):
    """The table columns of results holding ``keys``: :func:`stability_keys`, then MRR, Recall@10, NDCG@10."""
    return (*stability_keys(keys), *ACCURACY)


#: the columns of a run with the default ``jaccard_k: 10`` and ``frbo_k: 10``
METRICS = metric_keys(("frbo@10", "jaccard@10"))


def label(metric):
    """Display name of a metric key (``jaccard@10`` -> ``Jaccard@10``, ``frbo@10`` -> ``FRBO@10``)."""
    if metric.startswith("frbo@"):
        return "FRBO" + metric[4:]
    return LABELS.get(metric, metric[:1].upper() + metric[1:])


def method_label(method):
    return {"original": "Original", "finest": "FINEST"}.get(method, method)


def ratio_label(ratio):
    """0.001 -> ``0.1%``."""
    return f"{100 * float(ratio):g}%"


def epoch_label(name, epoch):
    """Name of the state (and study cell) of method / stage ``name`` after ``epoch`` fine-tuning epochs."""
    return f"{name}@e{int(epoch)}"
