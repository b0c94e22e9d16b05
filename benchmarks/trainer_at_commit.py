"""Time trials on the trainer of another commit (run by protocol_throughput.py).

Run with that commit's checkout first on PYTHONPATH; reads {"task", "epochs", "jobs":
[{"variant", "hidden_size", "learning_rate", "momentum", "input_noise", "seed"}]} as JSON on
stdin and prints {"cpu_seconds": ...}: the CPU time of training every job alone with that
commit's `odyssey.training.train` (after one untimed warm-up epoch, which builds its C++
extension). It uses only the API every commit since the trainer has had.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from odyssey.tasks import load_task
from odyssey.training import Hyperparameters, TrainSettings, train


def main() -> None:
    spec = json.load(sys.stdin)
    torch.set_num_threads(1)
    task = load_task(spec["task"])
    jobs = [(j.pop("variant"), j.pop("seed"), Hyperparameters(**j)) for j in spec["jobs"]]
    settings = TrainSettings(max_epochs=spec["epochs"], patience=spec["epochs"], batch_size=1)
    variant, seed, hp = jobs[0]
    train(task, variant, hp, TrainSettings(max_epochs=1, patience=1, batch_size=1), seed)
    start = time.process_time()
    for variant, seed, hp in jobs:
        train(task, variant, hp, settings, seed)
    print(json.dumps({"cpu_seconds": time.process_time() - start}))


if __name__ == "__main__":
    main()
