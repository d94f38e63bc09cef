set -u
mkdir -p /tmp/pp && python3 -m pip install -q --no-deps --target /tmp/pp .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=$(pwd)/src:/tmp/pp PYTHONUNBUFFERED=1
cd benchmarks
nvidia-smi --query-gpu=name --format=csv,noheader
echo "=== CPU (16 cores, 8 threads)"
OMP_NUM_THREADS=8 timeout 100 python3 bench_group_gradients.py --device cpu --rounds 3 2>&1 | grep -v Warn | tee $OUT/grad_cpu.log
OMP_NUM_THREADS=8 timeout 100 python3 bench_eigenvalue.py --device cpu --epochs 2 2>&1 | grep -v -i warn | tee $OUT/eig_cpu.log
echo "=== CUDA"
timeout 60 python3 bench_group_gradients.py --device cuda --images 4096 --rounds 5 2>&1 | grep -v Warn | tee $OUT/grad_gpu.log
timeout 60 python3 bench_eigenvalue.py --device cuda --epochs 3 --groups 5 --samples 256 2>&1 | grep -v -i warn | tee $OUT/eig_gpu.log
