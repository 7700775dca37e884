"""The model-kind adapter picks each real RecBole model's kind, and a new model's by capability."""

import pytest
from recbole.model.sequential_recommender import BERT4Rec, GRU4Rec, NARM, SASRec, Caser

from recbole_finest.model import TiSASRec
from recbole_finest.model_kind import CAUSAL, MASKED, PREFIX, kind_of


@pytest.mark.parametrize("cls, kind", [(SASRec, CAUSAL), (GRU4Rec, CAUSAL), (TiSASRec, CAUSAL),
                                       (BERT4Rec, MASKED), (NARM, PREFIX), (Caser, PREFIX)])
def test_kind_of_real_models(cls, kind):
    assert kind_of(cls) == kind


def test_new_models_get_their_kind_from_capabilities():
    """A renamed masked model and a new model with all_position_output need no plugin edit."""
    class MyMaskedRec(BERT4Rec):
        pass

    class MyCausalRec(NARM):
        def all_position_output(self, interaction):
            raise NotImplementedError

    class MyPrefixRec(SASRec.__mro__[1]):  # SequentialRecommender: no capability, not in overrides
        pass

    assert (kind_of(MyMaskedRec), kind_of(MyCausalRec), kind_of(MyPrefixRec)) == (MASKED, CAUSAL, PREFIX)
