"""What the training scripts share: their run options, and the device they train on."""

import torch


def add_run_arguments(ap, steps, steps_help):
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--steps", type=int, default=steps, help=steps_help)
    ap.add_argument("--minutes", type=float, default=None, help="stop after this much time in this run")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)


def device_for(args):
    """A CUDA GPU when there is one, else the CPU; and the hardware's name for the model card."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.get_device_name(0)
    return torch.device("cpu"), f"CPU ({torch.get_num_threads()} threads)"
