#!/usr/bin/env bash
# Assemble a CUDA 13.0 build toolkit from NVIDIA's PyPI wheels, for building `--features cuda`
# on a machine with no CUDA install and no GPU (the build machine here has neither; the GPU
# machine that runs the binary has the driver and the runtime libraries).
#
# What the build needs and where it comes from:
#   nvcc, ptxas, cicc, crt/ headers, cuda_fp16.h, cccl   -> nvidia-cuda-{nvcc,crt,runtime,cccl}, nvidia-nvvm
#   libcudart, libcublas(Lt), libcurand, libnvrtc (link) -> the matching runtime wheels
#   libcuda (the driver, link only)                      -> a stub generated here from cudarc's
#                                                           bindings; the real one is loaded at run time
#
# Usage: scripts/gpu/cuda-toolkit.sh [DIR]   (default /work/cuda13); prints the env to source.
set -euo pipefail

root=${1:-/work/cuda13}
wheels=$root/wheels
cuda=$root/nvidia/cu13
mkdir -p "$wheels"

if [ ! -x "$cuda/bin/nvcc" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
        --python-version 3.11 -d "$wheels" \
        'nvidia-cuda-nvcc==13.0.88' 'nvidia-cuda-crt==13.0.88' 'nvidia-nvvm==13.0.88' \
        'nvidia-cuda-runtime==13.0.96' 'nvidia-cuda-cccl==13.0.85' \
        'nvidia-cublas==13.0.2.14' 'nvidia-curand==10.4.0.35' 'nvidia-cuda-nvrtc==13.0.88'
    for w in "$wheels"/*.whl; do
        python3 -m zipfile -e "$w" "$root"
    done
    chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true
fi

# Wheels ship only versioned sonames; the linker looks for the bare name.
cd "$cuda/lib"
for so in lib*.so.[0-9]*; do
    base=${so%%.so.*}.so
    [ -e "$base" ] || ln -s "$so" "$base"
done

# The driver stub: one empty function per cu* symbol that cudarc declares, soname libcuda.so.1.
if [ ! -e "$cuda/lib/stubs/libcuda.so" ]; then
    mkdir -p "$cuda/lib/stubs"
    registry=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -1)
    grep -rhoE "^pub unsafe fn cu[A-Za-z0-9_]+" "$registry/src/driver/sys" \
        | awk "{print \$4}" | sort -u \
        | sed 's/.*/void &(void) {}/' >"$cuda/lib/stubs/cuda_stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" \
        "$cuda/lib/stubs/cuda_stub.c"
fi

cat <<ENV
export CUDA_HOME=$cuda CUDA_PATH=$cuda CUDA_ROOT=$cuda
export PATH=$cuda/bin:\$PATH
export LIBRARY_PATH=$cuda/lib:$cuda/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
ENV
