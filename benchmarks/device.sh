#!/usr/bin/env bash
# The benchmark JSON of benchmarks/throughput.py on a lent GPU, in under 5 minutes with the
# compiles: run from the repository root by the device tool (benchmarks/NOTES.md records
# what it printed). The device image has JAX, Flax, Optax, Orbax and chex but not the
# packages the data layer imports; fetch their wheels once, here, into the ignored .whl/:
#
#   bash benchmarks/device.sh --fetch-wheels      # here (needs the package registry)
#   bash benchmarks/device.sh                     # there, with carry=[".whl"]
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(tensorflow-datasets==4.9.10 array-record==0.8.6 dm-tree==0.1.10 immutabledict==4.3.1
        simple-parsing==0.1.9 docstring-parser==0.18.0 tensorflow-metadata==1.21.0
        googleapis-common-protos==1.76.0 termcolor==3.3.0 toml==0.10.2)
if [ "${1:-}" = "--fetch-wheels" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "${WHEELS[@]}"
  python3 -m pip wheel -q --no-deps -w .whl promise==2.3   # pure Python, no wheel on PyPI
  ls .whl
  exit 0
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
timeout 280 python3 benchmarks/throughput.py --json --repeats=10 \
  --models=1cnn_pixelrnn@1bit,1cnn_lstm@1bit,1cnn_gru@1bit,2cnn_pixelrnn@32bit
