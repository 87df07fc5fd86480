#!/usr/bin/env bash
# One xdist worker per GPU: which GPU each worker sees, which worker computed each checkpoint,
# and the wall time with -n G and -n 0. Usage (on a machine with G GPUs, from the repo root):
#   bash benchmarks/bench_gpus.sh G [COUNT]
set -uo pipefail
G=${1:-2}
COUNT=${2:-40}
W=$(mktemp -d)
mkdir -p "$W/sweep"
nvidia-smi -L
python -c "
import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; import bench_sweep
bench_sweep.make_sweep(Path('$W/sweep'), $COUNT)"
cat > "$W/conftest.py" <<'PY'
import os
def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        import torch
        w = session.config.workerinput["workerid"]
        with open(os.path.join(os.path.dirname(__file__), w + ".gpu"), "w") as f:
            f.write(f"{w}: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
                    f"device_count={torch.cuda.device_count()} "
                    f"gpu={torch.cuda.get_device_name(0)} threads={torch.get_num_threads()}\n")
PY
(for _ in $(seq 1 40); do
  nvidia-smi --query-compute-apps=pid,gpu_bus_id --format=csv,noheader >> "$W/smi.txt" 2>/dev/null
  sleep 1
done) &
cd "$W"
/usr/bin/time -f "-n $G: wall %e s" python -m pytest --ckpt=sweep --data=eval.pt -n "$G" -q \
  -p no:cacheprovider 2>&1 | tail -2
cat gw*.gpu
python -c "
import json, collections; d = json.load(open('credit-audit/results.json'))
print('checkpoints', len(d['checkpoints']), dict(collections.Counter(c['computed_by'] for c in d['checkpoints'])), 'complete', d['complete'])"
echo "processes on GPUs (pid, bus id):"; sort -u smi.txt
/usr/bin/time -f "-n 0: wall %e s" python -m pytest --ckpt=sweep --data=eval.pt -q \
  -p no:cacheprovider 2>&1 | tail -1
