"""Times the PyTorch reference VQ-VAE's encode and decode of a 16×64×64 clip on the CPU.

Called by `videogpt bench`; prints {"encode_s": …, "decode_s": …} (medians) as JSON.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videogpt_ref import VQVAE, VQVAEArgs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n_hiddens", type=int, default=240)
    ap.add_argument("--n_res_layers", type=int, default=4)
    ap.add_argument("--embedding_dim", type=int, default=256)
    ap.add_argument("--n_codes", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = VQVAE(VQVAEArgs(embedding_dim=a.embedding_dim, n_codes=a.n_codes, n_hiddens=a.n_hiddens,
                            n_res_layers=a.n_res_layers)).eval()
    model.codebook._need_init = False
    x = torch.rand(1, 3, 16, 64, 64) - 0.5
    enc, dec = [], []
    with torch.inference_mode():
        for i in range(a.repeat + 1):
            t0 = time.perf_counter()
            idx = model.encode(x)
            t1 = time.perf_counter()
            model.decode(idx)
            t2 = time.perf_counter()
            if i:
                enc.append(t1 - t0)
                dec.append(t2 - t1)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(json.dumps({"encode_s": med(enc), "decode_s": med(dec), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
