"""VideoGPT VQ-VAE (spec §1), with VideoGPT's state_dict key names.

Tensors are channel-first B×C×T×H×W in [-0.5, 0.5]. Everything is float32.
"""
import math
from dataclasses import dataclass, asdict
from typing import Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQVAEArgs:
    embedding_dim: int = 256
    n_codes: int = 2048
    n_hiddens: int = 240
    n_res_layers: int = 4
    downsample: Tuple[int, int, int] = (4, 4, 4)
    resolution: int = 64
    sequence_length: int = 16

    def metadata(self):
        """Safetensors __metadata__: VideoGPT's own hparam names, values as strings."""
        meta = {k: str(v) for k, v in asdict(self).items()}
        meta["downsample"] = ",".join(str(d) for d in self.downsample)
        meta["format"] = "videogpt-vqvae"
        return meta

    @staticmethod
    def from_metadata(meta):
        return VQVAEArgs(
            embedding_dim=int(meta["embedding_dim"]),
            n_codes=int(meta["n_codes"]),
            n_hiddens=int(meta["n_hiddens"]),
            n_res_layers=int(meta["n_res_layers"]),
            downsample=tuple(int(d) for d in meta["downsample"].split(",")),
            resolution=int(meta["resolution"]),
            sequence_length=int(meta["sequence_length"]),
        )


# --- convolutions with VideoGPT's "same" padding (spec §1.2, §1.3) -------------------------------

def _same_pad(kernel, stride):
    """F.pad tuple (reverse dim order): the extra zero of an odd k-s goes in front."""
    pad = []
    for k, s in zip(reversed(kernel), reversed(stride)):
        p = k - s
        pad += [p // 2 + p % 2, p // 2]
    return tuple(pad)


def _triple(x):
    return (x,) * 3 if isinstance(x, int) else tuple(x)


class SamePadConv3d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, bias=True):
        super().__init__()
        kernel_size, stride = _triple(kernel_size), _triple(stride)
        self.pad = _same_pad(kernel_size, stride)
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad))


class SamePadConvTranspose3d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, bias=True):
        super().__init__()
        kernel_size, stride = _triple(kernel_size), _triple(stride)
        self.pad = _same_pad(kernel_size, stride)
        self.convt = nn.ConvTranspose3d(in_channels, out_channels, kernel_size, stride=stride,
                                        bias=bias, padding=tuple(k - 1 for k in kernel_size))

    def forward(self, x):
        return self.convt(F.pad(x, self.pad))


# --- axial attention (spec §1.5) ----------------------------------------------------------------

class AxialMHA(nn.Module):
    """Full, non-causal multi-head attention along one axis of a B×T×H×W×C tensor."""

    def __init__(self, dim, n_head, axis):
        super().__init__()
        self.n_head, self.d_head, self.axis = n_head, dim // n_head, axis
        self.w_qs = nn.Linear(dim, dim, bias=False)
        self.w_ks = nn.Linear(dim, dim, bias=False)
        self.w_vs = nn.Linear(dim, dim, bias=False)
        self.fc = nn.Linear(dim, dim, bias=True)

    def _heads(self, x):  # B×T×H×W×C -> B×head×T×H×W×d
        return x.view(*x.shape[:-1], self.n_head, self.d_head).movedim(-2, 1)

    def forward(self, x):
        q, k, v = self._heads(self.w_qs(x)), self._heads(self.w_ks(x)), self._heads(self.w_vs(x))
        # bring the attended axis next to the feature axis; every other axis is batch
        q, k, v = (t.movedim(self.axis, -2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), dim=-1)
        out = (att @ v).movedim(-2, self.axis)  # B×head×T×H×W×d
        out = out.movedim(1, -2).reshape(*x.shape[:-1], self.n_head * self.d_head)
        return self.fc(out)


class AxialBlock(nn.Module):
    def __init__(self, n_hiddens, n_head=2):
        super().__init__()
        # axes of the B×head×T×H×W×d layout: T=2, H=3, W=4
        self.attn_w = AxialMHA(n_hiddens, n_head, axis=4)
        self.attn_h = AxialMHA(n_hiddens, n_head, axis=3)
        self.attn_t = AxialMHA(n_hiddens, n_head, axis=2)

    def forward(self, x):  # B×C×T×H×W
        x = x.movedim(1, -1)
        x = self.attn_w(x) + self.attn_h(x) + self.attn_t(x)
        return x.movedim(-1, 1)


class AttentionResidualBlock(nn.Module):
    def __init__(self, n_hiddens):
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm3d(n_hiddens), nn.ReLU(),
            SamePadConv3d(n_hiddens, n_hiddens // 2, 3, bias=False),
            nn.BatchNorm3d(n_hiddens // 2), nn.ReLU(),
            SamePadConv3d(n_hiddens // 2, n_hiddens, 1, bias=False),
            nn.BatchNorm3d(n_hiddens), nn.ReLU(),
            AxialBlock(n_hiddens, 2),
        )

    def forward(self, x):
        return x + self.block(x)


def _res_stack(n_hiddens, n_res_layers):
    return nn.Sequential(*[AttentionResidualBlock(n_hiddens) for _ in range(n_res_layers)],
                         nn.BatchNorm3d(n_hiddens), nn.ReLU())


def stride_schedule(downsample):
    """Per strided conv, the stride of each dim: 2 while that dim has halvings left (spec §1.4)."""
    counts = [int(math.log2(d)) for d in downsample]
    strides = []
    for _ in range(max(counts)):
        strides.append(tuple(2 if c > 0 else 1 for c in counts))
        counts = [c - 1 for c in counts]
    return strides


class Encoder(nn.Module):
    def __init__(self, n_hiddens, n_res_layers, downsample):
        super().__init__()
        strides = stride_schedule(downsample)
        assert len(strides) >= 2, "VideoGPT cannot build an encoder with fewer than two strided convs"
        self.convs = nn.ModuleList(
            SamePadConv3d(3 if i == 0 else n_hiddens, n_hiddens, 4, stride=s) for i, s in enumerate(strides))
        self.conv_last = SamePadConv3d(n_hiddens, n_hiddens, 3)
        self.res_stack = _res_stack(n_hiddens, n_res_layers)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.res_stack(self.conv_last(x))


class Decoder(nn.Module):
    def __init__(self, n_hiddens, n_res_layers, upsample):
        super().__init__()
        self.res_stack = _res_stack(n_hiddens, n_res_layers)
        strides = stride_schedule(upsample)  # same order as the encoder, not reversed
        self.convts = nn.ModuleList(
            SamePadConvTranspose3d(n_hiddens, 3 if i == len(strides) - 1 else n_hiddens, 4, stride=s)
            for i, s in enumerate(strides))

    def forward(self, x):
        x = self.res_stack(x)
        for i, convt in enumerate(self.convts):
            x = convt(x)
            if i < len(self.convts) - 1:
                x = F.relu(x)
        return x


class Codebook(nn.Module):
    def __init__(self, n_codes, embedding_dim):
        super().__init__()
        self.register_buffer("embeddings", torch.randn(n_codes, embedding_dim))
        self.register_buffer("N", torch.zeros(n_codes))
        self.register_buffer("z_avg", self.embeddings.clone())
        self.n_codes, self.embedding_dim = n_codes, embedding_dim
        self._need_init = True
        self.frozen = False  # training only: no EMA update nor restart (a warm start's first steps)
        # training across processes (train/dist.py: Ranks): sums the code counts and sums over the
        # ranks, gathers every rank's vectors for restarts and broadcasts rank 0's pick
        self.ranks = None
        self.restarted = 0  # codes restarted so far (training), for the logs

    def _tile(self, x):
        n, d = x.shape
        if n < self.n_codes:
            reps = (self.n_codes + n - 1) // n
            std = 0.01 / np.sqrt(d)
            x = x.repeat(reps, 1) + torch.randn(n * reps, d, device=x.device) * std
        return x

    def _init_embeddings(self, flat):
        self._need_init = False
        y = self._tile(flat)
        k = y[torch.randperm(y.shape[0], device=y.device)][: self.n_codes]
        if self.ranks:
            self.ranks.broadcast_(k)
        self.embeddings.data.copy_(k)
        self.z_avg.data.copy_(k)
        self.N.data.copy_(torch.ones(self.n_codes, device=flat.device))

    def distances(self, flat):
        # the expanded form, literally: it decides near-ties differently from sum((x-e)^2)
        return ((flat ** 2).sum(dim=1, keepdim=True) - 2 * flat @ self.embeddings.t()
                + (self.embeddings.t() ** 2).sum(dim=0, keepdim=True))

    def forward(self, z):
        flat = z.movedim(1, -1).reshape(-1, self.embedding_dim)
        if self._need_init and self.training:
            self._init_embeddings(self.ranks.gather(flat) if self.ranks else flat)
        idx = torch.argmin(self.distances(flat), dim=1)
        one_hot = F.one_hot(idx, self.n_codes).type_as(flat)
        idx = idx.view(z.shape[0], *z.shape[2:])
        e = F.embedding(idx, self.embeddings).movedim(-1, 1)
        commitment_loss = 0.25 * F.mse_loss(z, e.detach())

        if self.training and not self.frozen:  # EMA update and dead-code restarts (spec §1.8)
            n_total = one_hot.sum(dim=0)
            z_sum = flat.t() @ one_hot
            if self.ranks:  # every rank updates with the global batch's counts and sums
                self.ranks.sum_(n_total)
                self.ranks.sum_(z_sum)
            self.N.data.mul_(0.99).add_(n_total, alpha=0.01)
            self.z_avg.data.mul_(0.99).add_(z_sum.t(), alpha=0.01)
            n = self.N.sum()
            weights = (self.N + 1e-7) / (n + self.n_codes * 1e-7) * n
            self.embeddings.data.copy_(self.z_avg / weights.unsqueeze(1))
            usage = (self.N.view(self.n_codes, 1) >= 1).float()
            if (usage < 1).any():  # restart the dead codes at random encoder outputs
                self.restarted += int((usage < 1).sum().item())
                y = self._tile(self.ranks.gather(flat) if self.ranks else flat)
                rand = y[torch.randperm(y.shape[0], device=y.device)][: self.n_codes]
                if self.ranks:
                    self.ranks.broadcast_(rand)
                self.embeddings.data.mul_(usage).add_(rand * (1 - usage))

        e_st = (e - z).detach() + z
        p = one_hot.mean(dim=0)
        perplexity = torch.exp(-torch.sum(p * torch.log(p + 1e-10)))
        return dict(embeddings=e_st, encodings=idx, commitment_loss=commitment_loss, perplexity=perplexity)


class VQVAE(nn.Module):
    def __init__(self, args: VQVAEArgs):
        super().__init__()
        self.args = args
        self.encoder = Encoder(args.n_hiddens, args.n_res_layers, args.downsample)
        self.decoder = Decoder(args.n_hiddens, args.n_res_layers, args.downsample)
        self.pre_vq_conv = SamePadConv3d(args.n_hiddens, args.embedding_dim, 1)
        self.post_vq_conv = SamePadConv3d(args.embedding_dim, args.n_hiddens, 1)
        self.codebook = Codebook(args.n_codes, args.embedding_dim)

    @property
    def latent_shape(self):
        t, h, w = self.args.downsample
        return (self.args.sequence_length // t, self.args.resolution // h, self.args.resolution // w)

    def encode(self, x, include_embeddings=False):
        vq = self.codebook(self.pre_vq_conv(self.encoder(x)))
        return (vq["encodings"], vq["embeddings"]) if include_embeddings else vq["encodings"]

    def decode(self, encodings):
        h = F.embedding(encodings, self.codebook.embeddings).movedim(-1, 1)
        return self.decoder(self.post_vq_conv(h))

    def forward(self, x):
        z = self.pre_vq_conv(self.encoder(x))
        vq = self.codebook(z)
        x_recon = self.decoder(self.post_vq_conv(vq["embeddings"]))
        recon_loss = F.mse_loss(x_recon, x) / 0.06
        return recon_loss, x_recon, vq


# --- data -----------------------------------------------------------------------------------------

def preprocess(video, resolution, sequence_length=None, antialias=False):
    """THWC uint8 -> C×T×res×res float in [-0.5, 0.5] (spec §1.1). `antialias=True` is the
    engine's default resize (our models are trained on it); False is VideoGPT's own."""
    video = video.permute(0, 3, 1, 2).float() / 255.0
    t, c, h, w = video.shape
    if sequence_length is not None:
        video = video[:sequence_length]
    scale = resolution / min(h, w)
    target = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    video = F.interpolate(video, size=target, mode="bilinear", align_corners=False, antialias=antialias)
    t, c, h, w = video.shape
    h0, w0 = (h - resolution) // 2, (w - resolution) // 2
    video = video[:, :, h0:h0 + resolution, w0:w0 + resolution]
    return video.permute(1, 0, 2, 3).contiguous() - 0.5


def to_uint8(x):
    """B×C×T×H×W in [-0.5,0.5] -> B×T×H×W×C uint8, truncating like VideoGPT's callers."""
    x = (torch.clamp(x, -0.5, 0.5) + 0.5) * 255
    return x.movedim(1, -1).detach().cpu().numpy().astype(np.uint8)


# --- safetensors checkpoint format ----------------------------------------------------------------

def save_vqvae(model: VQVAE, path, dtype=torch.float32):
    from safetensors.torch import save_file
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        sd[k] = v.to(dtype) if v.is_floating_point() else v
    save_file(sd, str(path), metadata=model.args.metadata())


def load_vqvae(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        args = VQVAEArgs.from_metadata(f.metadata())
        sd = {k: f.get_tensor(k) for k in f.keys()}
    model = VQVAE(args)
    # shipped files leave out the codebook's training buffers (its EMA counts and sums)
    missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    if unexpected or set(missing) - {"codebook.N", "codebook.z_avg"}:
        raise RuntimeError(f"{path}: not a VideoGPT VQ-VAE (missing {missing}, unexpected {unexpected})")
    model.codebook._need_init = False
    return model.eval()
