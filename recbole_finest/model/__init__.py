"""Native RecBole models shipped with recbole-finest (looked up before RecBole's own)."""

from recbole_finest.model.lrurec import LRURec
from recbole_finest.model.tisasrec import TiSASRec

__all__ = ["LRURec", "TiSASRec"]
