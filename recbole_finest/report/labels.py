"""Display names of metrics, methods and perturbation ratios; the keys of a study group."""

ACCURACY = ("mrr", "recall@10", "ndcg@10")
LABELS = {"rbo": "RBO", "mrr": "MRR", "recall@10": "Recall@10", "ndcg@10": "NDCG@10"}
GROUP_KEYS = ("model", "selection", "kind", "ratio")


def stability_keys(keys):
    """``("rbo", "jaccard@<k>", ...)``: RBO and every Jaccard@k among ``keys`` by k (the k is the
    run's ``jaccard_k``, read off the results rather than assumed to be 10)."""
    return ("rbo", *sorted({k for k in keys if k.startswith("jaccard@")}, key=lambda k: int(k[8:])))


def metric_keys(keys):
    """The table columns of results holding ``keys``: :func:`stability_keys`, then MRR, Recall@10, NDCG@10."""
    return (*stability_keys(keys), *ACCURACY)


#: the columns of a run with the default ``jaccard_k: 10``
METRICS = metric_keys(("jaccard@10",))


def label(metric):
    """Display name of a metric key (``jaccard@10`` -> ``Jaccard@10``)."""
    return LABELS.get(metric, metric[:1].upper() + metric[1:])


def method_label(method):
    return {"original": "Original", "finest": "FINEST"}.get(method, method)


def ratio_label(ratio):
    """0.001 -> ``0.1%``."""
    return f"{100 * float(ratio):g}%"


def epoch_label(name, epoch):
    """Name of the state (and study cell) of method / stage ``name`` after ``epoch`` fine-tuning epochs."""
    return f"{name}@e{int(epoch)}"
