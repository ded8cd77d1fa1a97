"""VideoGPT's prior (spec §3): a GPT over VQ-VAE codes, with VideoGPT's key names.

Unconditional, class-conditional and frame-conditional (a ResNet-34 over the first frames, read by
cross-attention in every block), full or sparse causal attention.
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


class KeyBlocks(nn.Module):
    """Block-sparse attention for training: the sparse mask allows each block of 32 queries only
    about a dozen key blocks (its 4 predecessors, itself, and the blocks at the same place in
    earlier frames), so each query block is scored against just those keys, gathered, instead of
    against all N keys with most of them masked. Built from the layer's own N×N mask
    (`attention_mask`), so the allowed pairs are the same ones and the softmax sums the same terms
    (float order aside)."""

    def __init__(self, dense):
        super().__init__()
        nb = dense.shape[0] // SPARSE_BLOCK
        blocks = dense.view(nb, SPARSE_BLOCK, nb, SPARSE_BLOCK)
        allowed = [torch.nonzero(blocks[r].any(dim=(0, 2))).flatten() for r in range(nb)]
        counts = torch.tensor([len(a) for a in allowed])
        m = int(counts.max())
        # each row padded with its own block, masked out: every gather index is valid
        idx = torch.stack([torch.cat([a, a.new_full((m - len(a),), r)]) for r, a in enumerate(allowed)])
        mask = blocks.permute(0, 2, 1, 3)[torch.arange(nb).view(-1, 1), idx]  # nb×m×32×32
        mask &= (torch.arange(m).view(1, -1) < counts.view(-1, 1)).view(nb, m, 1, 1)
        self.register_buffer("idx", idx, persistent=False)
        self.register_buffer("mask", mask.permute(0, 2, 1, 3).reshape(nb, SPARSE_BLOCK, m * SPARSE_BLOCK), persistent=False)

    def forward(self, q, k, v):  # B×H×N×d each, N the whole grid
        b, h, n, d = q.shape
        nb, m = self.idx.shape
        gather = lambda t: t.reshape(b * h, nb, SPARSE_BLOCK, d)[:, self.idx].reshape(b * h, nb, m * SPARSE_BLOCK, d)  # noqa: E731
        out = F.scaled_dot_product_attention(q.reshape(b * h, nb, SPARSE_BLOCK, d), gather(k), gather(v), attn_mask=self.mask)
        return out.reshape(b, h, n, d)


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
        self.key_blocks = KeyBlocks(self.mask) if attn_type == "sparse" else None

    def forward(self, x):  # B×N×D
        b, n, _ = x.shape
        split = lambda t: t.view(b, n, self.n_head, self.d_k).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.w_qs(x)), split(self.w_ks(x)), split(self.w_vs(x))
        if self.key_blocks is not None and n == self.mask.shape[0]:
            out = self.key_blocks(q, k, v)  # the whole grid: only the blocks the mask allows
        else:  # softmax(q·kᵀ/√d_k, masked) · v, in torch's fused kernel (the same sums, less memory)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask[:n, :n])
        return self.fc(out.transpose(1, 2).reshape(b, n, -1))


class CrossAttention(nn.Module):
    """Full, non-causal attention from the tokens to the frame features: keys are projected to D,
    values to dim_kv (240), and the scale uses d_k = D / heads (spec §3.4)."""

    def __init__(self, dim, dim_kv, n_head):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, dim // n_head, dim_kv // n_head
        self.w_qs = nn.Linear(dim, dim, bias=False)
        self.w_ks = nn.Linear(dim_kv, dim, bias=False)
        self.w_vs = nn.Linear(dim_kv, dim_kv, bias=False)
        self.fc = nn.Linear(dim_kv, dim, bias=True)

    def forward(self, x, kv):  # B×N×D, B×M×dim_kv
        b, n, _ = x.shape
        m = kv.shape[1]
        q = self.w_qs(x).view(b, n, self.n_head, self.d_k).transpose(1, 2)
        k = self.w_ks(kv).view(b, m, self.n_head, self.d_k).transpose(1, 2)
        v = self.w_vs(kv).view(b, m, self.n_head, self.d_v).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(self.d_k), dim=-1)
        return self.fc((att @ v).transpose(1, 2).reshape(b, n, -1))


class AttentionBlock(nn.Module):
    def __init__(self, shape, dim, n_head, attn_type, class_cond_dim, frame_cond_dim=0):
        super().__init__()
        self.pre_attn_norm = LayerNorm(dim, class_cond_dim)
        self.attn = SelfAttention(shape, dim, n_head, attn_type)
        if frame_cond_dim:
            self.pre_enc_norm = LayerNorm(dim, class_cond_dim)
            self.enc_attn = CrossAttention(dim, frame_cond_dim, n_head)
        self.pre_fc_norm = LayerNorm(dim, class_cond_dim)
        self.fc_block = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, x, cond):
        x = x + self.attn(self.pre_attn_norm(x, cond))
        if hasattr(self, "enc_attn"):
            x = x + self.enc_attn(self.pre_enc_norm(x, cond), cond["frame_features"])
        h = self.pre_fc_norm(x, cond)
        return x + self.fc_block[2](gelu2(self.fc_block[0](h)))


RESNET_DIM = 240  # the frame features' width, fixed in VideoGPT


class ChannelLayerNorm(nn.Module):
    """resnet.py's LayerNorm: nn.LayerNorm over the channels of B×C×T×H×W, in fp32."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.float().movedim(1, -1)).movedim(-1, 1).type_as(x)


class NormReLU(nn.Module):
    def __init__(self, channels, relu=True):
        super().__init__()
        self.relu = relu
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x):
        x = self.norm(x)
        return F.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """relu(NormReLU(conv2(NormReLU(conv1(x)))) + shortcut); convs k3, symmetric padding 1."""

    def __init__(self, c_in, c_out, stride, use_projection=False):
        super().__init__()
        if use_projection:
            self.proj_conv = nn.Conv3d(c_in, c_out, kernel_size=1, stride=stride, bias=False)
            self.proj_bnr = NormReLU(c_out, relu=False)
        self.conv1 = nn.Conv3d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bnr1 = NormReLU(c_out)
        self.conv2 = nn.Conv3d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bnr2 = NormReLU(c_out)

    def forward(self, x):
        shortcut = self.proj_bnr(self.proj_conv(x)) if hasattr(self, "proj_conv") else x
        x = self.bnr2(self.conv2(self.bnr1(self.conv1(x))))
        return F.relu(x + shortcut)


class BlockGroup(nn.Module):
    def __init__(self, c_in, c_out, n_blocks, stride):
        super().__init__()
        self.start_block = ResidualBlock(c_in, c_out, stride, use_projection=True)
        self.blocks = nn.Sequential(*[ResidualBlock(c_out, c_out, 1) for _ in range(1, n_blocks)])

    def forward(self, x):
        return self.blocks(self.start_block(x))


class ResNet34(nn.Module):
    """resnet34(width_mult=1, stride=(1,4,4), resnet_dim=240) with the cifar stem (spec §3.5):
    B×3×T×H×W → B×T×H/4×W/4×240, channel-last."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, 64, kernel_size=3, stride=1, padding=1, bias=False), NormReLU(64))
        self.group1 = BlockGroup(64, 64, 3, 1)
        self.group2 = BlockGroup(64, 128, 4, (1, 2, 2))
        self.group3 = BlockGroup(128, 256, 6, (1, 2, 2))
        self.group4 = BlockGroup(256, RESNET_DIM, 3, 1)

    def forward(self, x):
        x = self.stem(x)
        for g in (self.group1, self.group2, self.group3, self.group4):
            x = g(x)
        return x.movedim(1, -1)


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
    def __init__(self, shape, dim, n_head, n_layer, attn_type, class_cond_dim, frame_cond_dim=0):
        super().__init__()
        self.right_shift = RightShift(dim)
        self.pos_embd = AddBroadcastPosEmbed(shape, dim)
        self.attn_nets = nn.ModuleList(AttentionBlock(shape, dim, n_head, attn_type, class_cond_dim, frame_cond_dim)
                                       for _ in range(n_layer))

    def forward(self, x, cond):
        x = self.right_shift(x) + self.pos_embd.table()
        for block in self.attn_nets:
            x = block(x, cond)
        return x


class VideoGPT(nn.Module):
    def __init__(self, args: GPTArgs, vqvae: VQVAE):
        super().__init__()
        self.args = args
        self.vqvae = vqvae.eval()
        for p in self.vqvae.parameters():
            p.requires_grad = False
        self.shape = vqvae.latent_shape
        e, d = vqvae.args.embedding_dim, args.hidden_dim
        self.fc_in = nn.Linear(e, d, bias=False)
        self.fc_in.weight.data.normal_(std=0.02)
        frame_cond_dim = RESNET_DIM if args.n_cond_frames else 0
        if args.n_cond_frames:
            res = vqvae.args.resolution
            self.resnet = ResNet34()
            self.cond_pos_embd = AddBroadcastPosEmbed((args.n_cond_frames, res // 4, res // 4), RESNET_DIM)
        self.attn_stack = AttentionStack(self.shape, d, args.heads, args.layers, args.attn_type, args.class_cond_dim,
                                         frame_cond_dim)
        self.norm = LayerNorm(d, args.class_cond_dim)
        self.fc_out = nn.Linear(d, vqvae.args.n_codes, bias=False)
        self.fc_out.weight.data.zero_()

    def frame_features(self, frames):
        """B×3×n_cond×res×res preprocessed frames → B×(n_cond·res/4·res/4)×240, with position."""
        f = self.resnet(frames)  # B×n×r×r×240
        b = f.shape[0]
        return f.reshape(b, -1, RESNET_DIM) + self.cond_pos_embd.table()

    def logits(self, codes, cond=None):
        """Teacher-forced logits for B×T'×H'×W' codes: B×N×K, position n predicting token n.
        `cond`: {"class_cond": B×classes one-hot} and/or {"frame_cond": B×3×n×res×res}."""
        b = codes.shape[0]
        if self.args.n_cond_frames:
            cond = dict(cond or {}, frame_features=self.frame_features(cond["frame_cond"]))
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
