#!/usr/bin/env bash
# GPU discovery script for Spark's resource scheduling.
#
# Spark runs it on every executor (spark.executor.resource.gpu.discoveryScript), on every standalone
# Worker (spark.worker.resource.gpu.discoveryScript) or on the driver
# (spark.driver.resource.gpu.discoveryScript) to learn which GPUs the machine or container has. It
# prints Spark's ResourceInformation JSON on standard output, e.g.
#
#   {"name": "gpu", "addresses": ["0", "1", "2", "3"]}
#
# The addresses are nvidia-smi indices (nvidia-smi --query-gpu=index --format=csv,noheader). Spark
# hands each task one of them (spark.task.resource.gpu.amount=1) and SparkPrune's GpuBinding uses it
# as the task's CUDA device ordinal. nvidia-smi numbers GPUs in PCI bus order; set
# spark.executorEnv.CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA numbers them the same way
# (conf/spark-defaults.conf.template does), and do not set CUDA_VISIBLE_DEVICES for executors
# (nvidia-smi ignores it, CUDA does not). In a container (YARN with Docker, Kubernetes with the
# NVIDIA device plugin) nvidia-smi lists only the GPUs given to the container, which is what Spark
# needs.
#
# With no GPU it prints an empty address list; if nvidia-smi is missing or fails it exits non-zero
# with a message on standard error, and Spark reports the executor or Worker start as failed.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-discovery.sh: nvidia-smi is not on PATH ($PATH); install the NVIDIA driver on this machine, or" \
       "remove the spark.*.resource.gpu.* settings to run without GPUs" >&2
  exit 1
fi

if ! out="$(nvidia-smi --query-gpu=index --format=csv,noheader)"; then
  echo "gpu-discovery.sh: 'nvidia-smi --query-gpu=index --format=csv,noheader' failed" >&2
  exit 1
fi

addresses=""
while IFS= read -r line; do
  index="${line//[[:space:]]/}"
  [[ -z "$index" ]] && continue
  if [[ ! "$index" =~ ^[0-9]+$ ]]; then
    echo "gpu-discovery.sh: unexpected line from nvidia-smi: '$line' (expected a GPU index)" >&2
    exit 1
  fi
  addresses+="${addresses:+, }\"$index\""
done <<< "$out"

echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
