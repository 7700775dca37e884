"""Timestamps as the files have them: finite, and held in float64 (RecBole 1.2.1 holds them in float32).

RecBole reads a ``timestamp:float`` column with pandas as float64, fills a NaN with the
column mean (``Dataset._fill_nan``) and turns the column into a ``torch.FloatTensor``
(``Dataset._dataframe_to_interaction``): Unix seconds (~1.7e9) keep 128-second steps there,
so interactions of one user closer than that tie, and RecBole's time sort (``eval_args``
``order: TO``, the sequential dataset's ``sort(by=[user, time])``) keeps them in file order,
not time order. :class:`ExactTimeMixin` (a base of the plugin's sequential dataset,
:func:`recbole_finest.compat.registry.prefix_free_dataset_class`) changes both:

* a NaN or infinite timestamp in an interaction file is refused, naming the file, the row
  and the column, as a raw file's is (:class:`~recbole_finest.data.convert.MalformedDatasetError`);
* the time field is a float64 tensor: integer seconds up to 2**53 (and float64 seconds) sort
  exactly as in the file, so per-user order and the time split are those of the raw timestamps.
"""

import numpy as np
import torch

from recbole_finest.data.convert import MalformedDatasetError


def check_finite_times(frame, field, path):
    """:class:`MalformedDatasetError` naming ``path`` when column ``field`` of ``frame`` has a NaN / inf value."""
    if frame is None or field is None or field not in frame:
        return
    values = frame[field].to_numpy(np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        row = int(bad[0])
        shown = "NaN (or empty)" if np.isnan(values[row]) else str(float(values[row]))
        raise MalformedDatasetError(
            f"{path}: timestamp column '{field}' has {len(bad)} value(s) that are not finite numbers, the first "
            f"{shown} in data row {row + 1} (after the header); RecBole would fill a NaN with the column mean "
            f"and keep inf as the latest time: fix or remove those rows")


class ExactTimeMixin:
    """RecBole ``Dataset`` methods that keep the time field finite and exact (listed before the RecBole class)."""

    def _load_feat(self, filepath, source):
        """RecBole's loading, then a NaN / inf in the time field of an interaction file is refused."""
        from recbole.utils import FeatureSource

        frame = super()._load_feat(filepath, source)
        if source == FeatureSource.INTERACTION:
            check_finite_times(frame, self.time_field, filepath)
        return frame

    def _dataframe_to_interaction(self, data):
        """RecBole's conversion, with the time field as float64 (RecBole: float32)."""
        from recbole.utils import FeatureType

        inter = super()._dataframe_to_interaction(data)
        field = self.time_field
        if (field is not None and field in data and self.field2type.get(field) == FeatureType.FLOAT
                and field not in (self.config["numerical_features"] or ())):
            inter[field] = torch.from_numpy(np.ascontiguousarray(data[field].to_numpy(np.float64)))
        return inter
