# start.sh hook (sourced): say which GPUs this notebook got, if any.
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L >&2 || true
else
    echo "gpu: no NVIDIA driver in this container (start it with a GPU reservation)" >&2
fi
