"""Writes examples/mydata.npz, your own data in odyssey's .npz layout: 400 sequences of 3 noisy
features; each step is labelled with the feature that was largest one step before (0 at the start)."""

import numpy as np

rng = np.random.default_rng(0)
lengths = rng.integers(10, 40, size=400)  # 400 sequences of 10..39 steps
inputs = rng.normal(size=(lengths.sum(), 3)).astype(np.float32)  # laid end to end: (total_steps, 3)
frame_labels = np.r_[0, inputs[:-1].argmax(axis=1)]  # one class per step: 0, 1 or 2
frame_labels[np.cumsum(lengths)[:-1]] = 0  # a sequence's first step has no past
np.savez("examples/mydata.npz", inputs=inputs, lengths=lengths, frame_labels=frame_labels)
print(f"wrote examples/mydata.npz: {len(lengths)} sequences, {lengths.sum()} steps")
