"""The trained states of models A and B of one stability run, and their test outputs.

A state (a model's state dict after a stage: ``"pretrained"``, a method name, or
``<stage>@e<epoch>`` for an intermediate fine-tuning epoch) is, in this order: kept in
memory, loaded from ``state_path(side, stage)``, or trained. Model A's states live in the
dict ``shared`` by every run of the same model, seed and settings (A does not depend on the
evaluation perturbation); B's belong to the run.
"""

import copy
import os
from logging import getLogger

from recbole_finest.fileio import UnreadableFileError, load_checkpoint, save_checkpoint
from recbole_finest.stability.evaluate import EvalOutput


class ModelStates:
    """``sides[side]["states"][stage]`` (state dicts) and ``sides[side]["outputs"][stage]`` (test outputs).

    Args:
        shared: the dict shared by the runs of one model and seed (model A's entry is kept there).
        state_path: optional ``f(side, stage) -> path or None``; a state found there is loaded
            instead of training, a trained one is saved there (atomically).
        device: where loaded states are mapped.
    """

    def __init__(self, shared, state_path, device):
        self.sides = {"A": shared.setdefault("A", {}), "B": {}}
        for side in self.sides.values():
            side.setdefault("states", {})
            side.setdefault("outputs", {})
        self.state_path = state_path or (lambda side, stage: None)
        self.device = device
        self.logger = getLogger()

    @property
    def pretrained(self):
        """``{side: state dict}`` of the pre-trained models available so far."""
        return {side: v["states"]["pretrained"] for side, v in self.sides.items() if "pretrained" in v["states"]}

    @pretrained.setter
    def pretrained(self, states):
        """Use the given ``{side: state dict}`` as pre-trained models (they are not trained again)."""
        for side, state in states.items():
            self.sides[side]["states"]["pretrained"] = state
            self.sides[side]["outputs"].pop("pretrained", None)

    def _stored(self, side, stage):
        """State dict of ``side`` after ``stage`` from ``state_path``, or None."""
        path = self.state_path(side, stage)
        if path and os.path.isfile(path):
            self.logger.info(f"model {side} ({stage}): loading {path}")
            try:
                return load_checkpoint(path, map_location=self.device)
            except UnreadableFileError as exc:  # a truncated cache entry is not a trained model
                self.logger.warning(f"{exc}; model {side} ({stage}) is trained again")
        return None

    def _store(self, side, stage, state):
        path = self.state_path(side, stage)
        if path:
            save_checkpoint(state, path)

    def outputs(self, side, stage, train, snapshots=None):
        """Outputs ``{name: EvalOutput}`` of ``side`` after ``stage`` and its snapshot stages.

        ``train()`` returns the trainer of one training that gives every missing state;
        ``snapshots`` maps epochs to the stage names of intermediate states of that training
        (``trainer.snapshots[epoch]``); they are cached, loaded or stored like ``stage``. An
        output holds the state only: it is scored once, in the pair's comparison
        (``StabilityRun._row``).
        """
        cache = self.sides[side]
        snapshots = dict(snapshots or {})
        stages = [stage] + [s for s in snapshots.values() if s != stage]
        states = {}
        for name in stages:
            if name not in cache["outputs"]:
                states[name] = cache["states"].get(name)
                if states[name] is None:
                    states[name] = self._stored(side, name)
        if any(state is None for state in states.values()):
            trainer = train()
            trained = {stage: copy.deepcopy(trainer.model.state_dict())}
            trained.update({name: trainer.snapshots[epoch] for epoch, name in snapshots.items() if name != stage})
            for name in states:
                states[name] = trained[name]
                self._store(side, name, trained[name])
        for name, state in states.items():
            cache["states"][name] = state
            cache["outputs"][name] = EvalOutput(state=state)  # scored once, in the pair's comparison (_row)
        return {name: cache["outputs"][name] for name in stages}
