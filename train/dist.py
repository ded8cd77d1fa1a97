"""One process or many: the trainers run unchanged as `python3 train/train_*.py …` and under
`torchrun --nproc_per_node N train/train_*.py …` (PyTorch's DistributedDataParallel), and give the
same weights either way, up to float summation order. How:

- **Process group.** torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; with WORLD_SIZE > 1 we join a
  group: NCCL when training on CUDA, gloo on the CPU. Without torchrun nothing is initialised.
- **Data.** `--batch` is the *global* batch. Every rank draws the same global batch from the same
  seeded generator (the seed and the step, so a resumed run draws what an unbroken one would, at
  any world size) and keeps its contiguous share `[rank·B/W, (rank+1)·B/W)`; DDP averages the
  gradients, so a step is the single-process step over the global batch.
- **BatchNorm.** `SyncBatchNorm` runs on CUDA only, so the VQ-VAE's BatchNorm3d layers become
  `GlobalBatchNorm3d`: the same module and state_dict keys, whose training statistics are summed
  over all ranks with an autograd-aware all-reduce (sum and sum of squares per channel), so the
  normalisation, its gradients and the running statistics are those of the global batch, on gloo
  and NCCL alike. Evaluation uses the running statistics, as before.
- **The codebook** (EMA updates and dead-code restarts, spec §1.8) is kept identical on every rank,
  as the original VideoGPT code does with its all-reduces: the code counts and sums are all-reduced
  before the EMA update; a restart (and the data initialisation) picks its vectors from every
  rank's encoder outputs gathered in rank order, on rank 0, and broadcasts them.
- **Writing.** Only rank 0 writes checkpoints, logs and weights, always from the unwrapped model,
  so the keys stay VideoGPT's (no `module.` prefix); a checkpoint from any world size resumes at
  any other.
"""

import os

import torch
import torch.distributed as dist
import torch.nn as nn


class Ranks:
    """This process's place among the training processes (a world of 1 without torchrun)."""

    def __init__(self, device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group(backend)

    @property
    def main(self):
        """Rank 0: the one that prints, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self):
        return self.world > 1

    def share(self, batch):
        """This rank's contiguous share of a global batch (the first dimension)."""
        if not self.distributed:
            return batch
        n = batch.shape[0]
        if n % self.world:
            raise SystemExit(f"--batch {n} must be a multiple of the {self.world} processes")
        k = n // self.world
        return batch[self.rank * k:(self.rank + 1) * k]

    def wrap(self, module):
        """DistributedDataParallel around `module` (itself when alone). Buffers are not
        broadcast from rank 0 at every forward: every rank keeps them equal by construction."""
        if not self.distributed:
            return module
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def decide(self, fraction, stop):
        """Rank 0's (fraction of the run done, whether to stop) on every rank: each rank's own clock
        would otherwise give another learning rate or stop at another step."""
        if not self.distributed:
            return fraction, stop
        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([float(fraction), float(stop)], dtype=torch.float64, device=on)
        dist.broadcast(t, 0)
        return t[0].item(), bool(t[1].item())

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    # the codebook's hooks (videogpt_ref.vqvae.Codebook.ranks)
    def sum_(self, t):
        """Sum `t` over the ranks, in place."""
        if self.distributed:
            dist.all_reduce(t)
        return t

    def gather(self, flat):
        """Every rank's rows of `flat`, in rank order (every rank's batch share has the same size)."""
        if not self.distributed:
            return flat
        parts = [torch.empty_like(flat) for _ in range(self.world)]
        dist.all_gather(parts, flat.contiguous())
        return torch.cat(parts)

    def broadcast_(self, t):
        """Rank 0's `t` on every rank, in place."""
        if self.distributed:
            dist.broadcast(t, 0)
        return t


class _SumOverRanks(torch.autograd.Function):
    """y = the sum of x over the ranks, with its gradient: every rank's loss depends on every
    rank's x through y, so the gradient reaching this rank's x is the sum of all ranks' dL/dy."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d whose training statistics are those of the global batch across all ranks (see
    the module's doc); the same parameters, buffers and keys as nn.BatchNorm3d."""

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3, 4)
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count.view(1)])
        stats = _SumOverRanks.apply(stats)  # gradients flow back to every rank's share
        c = x.shape[1]
        n = stats[2 * c]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        shape = (1, c, 1, 1, 1)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def globalise_batchnorm(module):
    """Every BatchNorm3d in `module` becomes a GlobalBatchNorm3d sharing its tensors."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm3d) and not isinstance(child, GlobalBatchNorm3d):
            g = GlobalBatchNorm3d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            g.load_state_dict(child.state_dict())
            g.to(child.weight.device)
            setattr(module, name, g)
        else:
            globalise_batchnorm(child)
    return module

