"""Times our PyTorch reference prior sampling with a KV cache (one token per step, raster order)
on the CPU. Called by `videogpt bench-gpt`; prints {"tokens_per_s": …} as JSON.

The cache decode is written here from spec §3.7: each step embeds the previous token, adds the
position's embedding, writes its keys/values into row i of every layer's cache and attends over
rows 0..i with the model's mask row.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videogpt_ref import VQVAE, VQVAEArgs  # noqa: E402
from videogpt_ref.gpt import GPTArgs, VideoGPT, gelu2  # noqa: E402


@torch.inference_mode()
def sample(model, seed):
    torch.manual_seed(seed)
    n = math.prod(model.shape)
    stack = model.attn_stack
    pos = stack.pos_embd.table()
    d = pos.shape[1]
    # preallocated per-layer caches, written in place (as VideoGPT's decode does); growing them by
    # concatenation fragments the allocator until a 4×32×32 grid exhausts memory
    caches = [(torch.zeros(n, d), torch.zeros(n, d)) for _ in stack.attn_nets]
    tokens = []
    for i in range(n):
        if i == 0:
            x = stack.right_shift.sos.view(1, -1)
        else:
            x = model.fc_in(model.vqvae.codebook.embeddings[tokens[-1]].view(1, -1))
        x = x + pos[i]
        for block, (ks, vs) in zip(stack.attn_nets, caches):
            a = block.attn
            h = block.pre_attn_norm(x)
            ks[i] = a.w_ks(h)[0]
            vs[i] = a.w_vs(h)[0]
            q = a.w_qs(h).view(a.n_head, 1, a.d_k)
            k = ks[: i + 1].view(-1, a.n_head, a.d_k).transpose(0, 1)
            v = vs[: i + 1].view(-1, a.n_head, a.d_k).transpose(0, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(a.d_k)
            att = att.masked_fill(~a.mask[i, : i + 1], float("-inf"))
            x = x + a.fc((torch.softmax(att, -1) @ v).transpose(0, 1).reshape(1, -1))
            x = x + block.fc_block[2](gelu2(block.fc_block[0](block.pre_fc_norm(x))))
        logits = model.fc_out(model.norm(x))
        tokens.append(int(torch.multinomial(F.softmax(logits[0], -1), 1)))
    return tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latent", default="4,16,16")
    ap.add_argument("--hidden_dim", type=int, default=576)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--attn_type", default="sparse")
    ap.add_argument("--n_codes", type=int, default=1024)
    a = ap.parse_args()
    t, h, w = (int(v) for v in a.latent.split(","))
    vq = VQVAE(VQVAEArgs(n_codes=a.n_codes, n_hiddens=16, n_res_layers=0, embedding_dim=256,
                         downsample=(4, 4, 4), resolution=4 * h, sequence_length=4 * t))
    model = VideoGPT(GPTArgs(hidden_dim=a.hidden_dim, heads=a.heads, layers=a.layers, attn_type=a.attn_type), vq).eval()
    for p in model.parameters():
        p.data.normal_(std=0.02)
    n = t * h * w
    start = time.perf_counter()
    sample(model, 0)
    seconds = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": n / seconds, "seconds": seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
