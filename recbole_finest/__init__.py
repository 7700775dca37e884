"""recbole-finest: rank-preserving fine-tuning (FINEST) for RecBole sequential recommenders."""

__version__ = "0.1.0"
