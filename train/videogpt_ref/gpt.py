"""VideoGPT's prior (spec §3): a GPT over VQ-VAE codes, with VideoGPT's key names.

Unconditional and class-conditional, full or sparse causal attention. (Frame conditioning, the
ResNet-34 encoder with cross-attention, is not implemented here yet.)
Activations are channel-last B×T'×H'×W'×D; the flattened order is raster (w fastest).
"""
import math
from dataclasses import dataclass, asdict
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vqvae import VQVAE, VQVAEArgs

SPARSE_BLOCK = 32
SPARSE_LOCAL_BLOCKS = 4


@dataclass
class GPTArgs:
    hidden_dim: int = 576
    heads: int = 4
    layers: int = 8
    attn_type: str = "full"  # or "sparse"
    class_cond_dim: int = 0  # 0: unconditional
    n_cond_frames: int = 0

    def metadata(self):
        meta = {k: str(v) for k, v in asdict(self).items()}
        meta["format"] = "videogpt-gpt"
        return meta

    @staticmethod
    def from_metadata(meta):
        return GPTArgs(hidden_dim=int(meta["hidden_dim"]), heads=int(meta["heads"]), layers=int(meta["layers"]),
                       attn_type=meta["attn_type"], class_cond_dim=int(meta.get("class_cond_dim", 0)),
                       n_cond_frames=int(meta.get("n_cond_frames", 0)))


def gelu2(x):
    return x * torch.sigmoid(1.702 * x)


class LayerNorm(nn.Module):
    """VideoGPT's LayerNorm: eps goes on the reciprocal square root (spec §3.6)."""

    def __init__(self, dim, class_cond_dim=0):
        super().__init__()
        self.conditional = class_cond_dim > 0
        if self.conditional:
            self.w = nn.Linear(class_cond_dim, dim, bias=False)
            nn.init.constant_(self.w.weight, 1.0 / math.sqrt(class_cond_dim))
            self.wb = nn.Linear(class_cond_dim, dim, bias=False)
        else:
            self.g = nn.Parameter(torch.ones(dim))
            self.b = nn.Parameter(torch.zeros(dim))

    def forward(self, x, cond=None):
        dtype = x.dtype
        x = x.float()
        mu = x.mean(dim=-1, keepdim=True)
        var = (x - mu).square().mean(dim=-1, keepdim=True)
        x = (x - mu) * (var.rsqrt() + 1e-5)
        if self.conditional:
            c = cond["class_cond"]
            g = 1 + self.w(c).view(c.shape[0], *(1,) * (x.dim() - 2), -1)
            b = self.wb(c).view(c.shape[0], *(1,) * (x.dim() - 2), -1)
            x = x * g + b
        else:
            x = x * self.g + self.b
        return x.to(dtype)


def sparse_block_shape(shape):
    """StridedSparsityConfig's block grid: merge trailing latent dims until they exceed a block."""
    cum = 1
    for i in range(len(shape) - 1, -1, -1):
        cum *= shape[i]
        if cum > SPARSE_BLOCK:
            break
    assert cum % SPARSE_BLOCK == 0, f"latent {shape} does not split into blocks of {SPARSE_BLOCK}"
    return (*shape[:i], cum // SPARSE_BLOCK)


def attention_mask(shape, attn_type):
    """N×N boolean: may position i attend to j (spec §3.4)."""
    n = math.prod(shape)
    i = torch.arange(n).view(-1, 1)
    j = torch.arange(n).view(1, -1)
    causal = j <= i
    if attn_type == "full":
        return causal
    blocks_per_frame = sparse_block_shape(shape)[-1]
    r, c = i // SPARSE_BLOCK, j // SPARSE_BLOCK
    return causal & (((r - c) <= SPARSE_LOCAL_BLOCKS) | ((c % blocks_per_frame) == (r % blocks_per_frame)))


class SelfAttention(nn.Module):
    def __init__(self, shape, dim, n_head, attn_type):
        super().__init__()
        self.n_head, self.d_k = n_head, dim // n_head
        self.w_qs = nn.Linear(dim, dim, bias=False)
        self.w_ks = nn.Linear(dim, dim, bias=False)
        self.w_vs = nn.Linear(dim, dim, bias=False)
        self.fc = nn.Linear(dim, dim, bias=True)
        # not a parameter: VideoGPT's full-attention checkpoints carry it as `attn.attn.mask`,
        # which converters drop; the mask is a pure function of shape and attn_type
        self.register_buffer("mask", attention_mask(shape, attn_type), persistent=False)

    def forward(self, x):  # B×N×D
        b, n, _ = x.shape
        split = lambda t: t.view(b, n, self.n_head, self.d_k).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.w_qs(x)), split(self.w_ks(x)), split(self.w_vs(x))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.d_k)
        att = att.masked_fill(~self.mask[:n, :n], float("-inf"))
        out = torch.softmax(att, dim=-1) @ v
        return self.fc(out.transpose(1, 2).reshape(b, n, -1))


class AttentionBlock(nn.Module):
    def __init__(self, shape, dim, n_head, attn_type, class_cond_dim):
        super().__init__()
        self.pre_attn_norm = LayerNorm(dim, class_cond_dim)
        self.attn = SelfAttention(shape, dim, n_head, attn_type)
        self.pre_fc_norm = LayerNorm(dim, class_cond_dim)
        self.fc_block = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, x, cond):
        x = x + self.attn(self.pre_attn_norm(x, cond))
        h = self.pre_fc_norm(x, cond)
        return x + self.fc_block[2](gelu2(self.fc_block[0](h)))


class AddBroadcastPosEmbed(nn.Module):
    def __init__(self, shape, dim):
        super().__init__()
        assert dim % 3 == 0
        self.shape = shape
        self.emb = nn.ParameterDict({f"d_{i}": nn.Parameter(torch.randn(s, dim // 3) * 0.01)
                                     for i, s in enumerate(shape)})

    def table(self):  # N×D: concat(time | height | width)
        t, h, w = self.shape
        d0 = self.emb["d_0"].view(t, 1, 1, -1).expand(t, h, w, -1)
        d1 = self.emb["d_1"].view(1, h, 1, -1).expand(t, h, w, -1)
        d2 = self.emb["d_2"].view(1, 1, w, -1).expand(t, h, w, -1)
        return torch.cat([d0, d1, d2], dim=-1).reshape(t * h * w, -1)


class RightShift(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.sos = nn.Parameter(torch.randn(dim) * 0.02)

    def forward(self, x):  # B×N×D
        sos = self.sos.view(1, 1, -1).expand(x.shape[0], 1, -1)
        return torch.cat([sos, x[:, :-1]], dim=1)


class AttentionStack(nn.Module):
    def __init__(self, shape, dim, n_head, n_layer, attn_type, class_cond_dim):
        super().__init__()
        self.right_shift = RightShift(dim)
        self.pos_embd = AddBroadcastPosEmbed(shape, dim)
        self.attn_nets = nn.ModuleList(AttentionBlock(shape, dim, n_head, attn_type, class_cond_dim)
                                       for _ in range(n_layer))

    def forward(self, x, cond):
        x = self.right_shift(x) + self.pos_embd.table()
        for block in self.attn_nets:
            x = block(x, cond)
        return x


class VideoGPT(nn.Module):
    def __init__(self, args: GPTArgs, vqvae: VQVAE):
        super().__init__()
        assert args.n_cond_frames == 0, "frame conditioning is not implemented in this reference yet"
        self.args = args
        self.vqvae = vqvae.eval()
        for p in self.vqvae.parameters():
            p.requires_grad = False
        self.shape = vqvae.latent_shape
        e, d = vqvae.args.embedding_dim, args.hidden_dim
        self.fc_in = nn.Linear(e, d, bias=False)
        self.fc_in.weight.data.normal_(std=0.02)
        self.attn_stack = AttentionStack(self.shape, d, args.heads, args.layers, args.attn_type, args.class_cond_dim)
        self.norm = LayerNorm(d, args.class_cond_dim)
        self.fc_out = nn.Linear(d, vqvae.args.n_codes, bias=False)
        self.fc_out.weight.data.zero_()

    def logits(self, codes, cond=None):
        """Teacher-forced logits for B×T'×H'×W' codes: B×N×K, position n predicting token n."""
        b = codes.shape[0]
        emb = F.embedding(codes.view(b, -1), self.vqvae.codebook.embeddings)
        h = self.attn_stack(self.fc_in(emb), cond)
        return self.fc_out(self.norm(h, cond))

    def bits_per_token(self, codes, cond=None):
        logits = self.logits(codes, cond)
        nll = F.cross_entropy(logits.transpose(1, 2), codes.view(codes.shape[0], -1), reduction="none")
        return nll.mean(dim=1) / math.log(2)


def save_gpt(model: VideoGPT, path, include_vqvae=True):
    from safetensors.torch import save_file
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()
          if include_vqvae or not k.startswith("vqvae.")}
    meta = model.args.metadata()
    meta.update({f"vqvae.{k}": v for k, v in model.vqvae.args.metadata().items() if k != "format"})
    save_file(sd, str(path), metadata=meta)


def load_gpt(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    vq_args = VQVAEArgs.from_metadata({k[len("vqvae."):]: v for k, v in meta.items() if k.startswith("vqvae.")})
    model = VideoGPT(GPTArgs.from_metadata(meta), VQVAE(vq_args))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    model.vqvae.codebook._need_init = False
    return model.eval()
