"""Display names of metrics, methods and perturbation ratios; the keys of a study group."""

METRICS = ("rbo", "jaccard@10", "mrr", "recall@10", "ndcg@10")
LABELS = {"rbo": "RBO", "mrr": "MRR", "recall@10": "Recall@10", "ndcg@10": "NDCG@10"}
GROUP_KEYS = ("model", "selection", "kind", "ratio")


def label(metric):
    """Display name of a metric key (``jaccard@10`` -> ``Jaccard@10``)."""
    return LABELS.get(metric, metric[:1].upper() + metric[1:])


def method_label(method):
    return {"original": "Original", "finest": "FINEST"}.get(method, method)


def ratio_label(ratio):
    """0.001 -> ``0.1%``."""
    return f"{100 * float(ratio):g}%"
