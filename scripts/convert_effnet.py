"""Convert the legacy (pre-1.6 torch.save) EfficientNet-Lite0 checkpoint to safetensors.

Usage: python convert_effnet.py [--trunk] <in.pth> <out.safetensors>

Keeps the EfficientNet-PyTorch key names ('_conv_stem.weight', '_blocks.3._bn1.running_var', ...),
drops nothing (with --trunk: the classifier head '_conv_head', '_bn1' and '_fc', which the
feature network does not use: 12 MB instead of 19, for carrying to a machine), and writes the
safetensors format by hand (no extra package needed): an 8-byte little endian header length, a
JSON header with dtype/shape/offsets, then the raw little-endian tensor bytes.
"""
import json
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.float16: "F16", torch.uint8: "U8"}


def save_safetensors(state: dict, dst: str) -> None:
    """Write a dict of tensors as safetensors."""
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    print(f"wrote {len(header)} tensors to {dst}", file=sys.stderr)


HEAD = ("_conv_head.", "_bn1.", "_fc.")


def main(argv: list) -> None:
    trunk = argv[:1] == ["--trunk"]
    if trunk:
        argv = argv[1:]
    if len(argv) != 2:
        sys.exit(__doc__)
    src, dst = argv
    state = torch.load(src, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    if trunk:
        state = {k: v for k, v in state.items() if not k.startswith(HEAD)}
    save_safetensors(state, dst)


if __name__ == "__main__":
    main(sys.argv[1:])
