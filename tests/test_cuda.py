"""The GPU paths: FINEST on ``cuda`` computes what it computes on the CPU.

Skipped on machines without CUDA (CI). On a GPU machine the same pre-trained model is
copied to both devices; reference lists, the next-item loss and the rank-preserving loss
of one batch, and a whole pre-training + FINEST fine-tuning with stability metrics must
run on ``cuda`` and agree with the CPU up to float rounding.
"""

import copy

import pytest
import torch
from recbole.data.transform import construct_transform
from recbole.utils import init_seed

from recbole_finest.config import Config
from recbole_finest.stability.metrics import jaccard, rbo
from recbole_finest.finest.trainer import FINETUNE, FinestTrainer
from recbole_finest.utils import get_model

from _cpu import on_cpu
from conftest import load_splits, tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the device tool's machine)")

TINY = tiny(hidden_dropout_prob=0.0, attn_dropout_prob=0.0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuda")
    _, train, valid, test = load_splits(tmp, TINY)
    return dict(tmp=tmp, train=train, valid=valid, test=test)


def _trainers(env, model_name, unit):
    """A CPU trainer with a pre-trained model and a ``cuda`` trainer holding a copy of it."""
    def config():
        cfg = Config(model_name, "ml-100k", config_dict={"finest_protocol": True, 
            **TINY, "checkpoint_dir": str(env["tmp"] / "saved"), "train_unit": unit})
        construct_transform(cfg)
        return cfg

    cpu_cfg, gpu_cfg = on_cpu(config()), config()
    assert gpu_cfg["device"].type == "cuda"
    init_seed(cpu_cfg["seed"], cpu_cfg["reproducibility"])
    cpu = FinestTrainer(cpu_cfg, get_model(model_name)(cpu_cfg, env["train"].dataset))
    cpu.pretrain(env["train"], None, verbose=False, saved=False)
    gpu = FinestTrainer(gpu_cfg, copy.deepcopy(cpu.model))
    assert next(gpu.model.parameters()).is_cuda
    return cpu, gpu


@pytest.mark.parametrize("model_name,unit", [
    ("SASRec", "sequence"), ("SASRec", "prefix"), ("GRU4Rec", "sequence"), ("BERT4Rec", "sequence"),
])
def test_reference_lists_and_losses_on_cuda_equal_cpu(env, model_name, unit):
    cpu, gpu = _trainers(env, model_name, unit)
    ref_cpu, ref_gpu = cpu.build_reference(env["train"]), gpu.build_reference(env["train"])
    assert ref_gpu.table.device.type == "cuda"
    same = (ref_cpu.table.long() == ref_gpu.table.cpu().long()).float().mean()
    assert same > 0.95, f"only {float(same):.3f} of the reference entries agree"  # near-ties may swap

    batch = next(iter(cpu.make_loader(env["train"])))
    losses = {}
    for name, trainer in (("cpu", cpu), ("cuda", gpu)):
        trainer.phase = FINETUNE
        trainer.model.eval()
        torch.manual_seed(0)  # BERT4Rec draws its masks from the global generator of the batch's device
        with torch.no_grad():
            losses[name] = [float(x) for x in trainer.batch_losses(batch.to(trainer.device))]
    assert len(losses["cuda"]) == 2
    if model_name != "BERT4Rec":  # masks are drawn on each device: different positions
        assert losses["cuda"] == pytest.approx(losses["cpu"], rel=2e-2)


def test_pretraining_finest_and_stability_metrics_run_on_cuda(env):
    cfg = Config("SASRec", "ml-100k", config_dict={"finest_protocol": True, **TINY, "checkpoint_dir": str(env["tmp"] / "saved")})
    init_seed(cfg["seed"], cfg["reproducibility"])
    trainer = FinestTrainer(cfg, get_model("SASRec")(cfg, env["train"].dataset))
    trainer.fit(env["train"], env["valid"], verbose=False, saved=False)
    assert trainer.reference.table.device.type == "cuda"
    assert all(p.is_cuda for p in trainer.model.parameters())
    result = trainer.evaluate(env["test"], load_best_model=False)
    assert result and all(0 <= v <= 1 for v in result.values())

    a = torch.randperm(500, device="cuda")[None].repeat(8, 1)
    b = torch.stack([torch.roll(a[0], shifts=s) for s in range(8)])
    for fn in (rbo, jaccard):
        args = (a, b) if fn is rbo else (a, b, 10)
        on_gpu, on_cpu_ = fn(*args), fn(*(x.cpu() if torch.is_tensor(x) else x for x in args))
        assert on_gpu.device.type == "cuda"
        assert torch.allclose(on_gpu.cpu(), on_cpu_, atol=1e-12)
