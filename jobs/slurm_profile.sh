#!/bin/bash
# Profile a Parquet dataset with the MPI engine in a Slurm batch job.
#
#   sbatch jobs/slurm_profile.sh data/flights reports/flights-slurm
#
# One MPI rank per task; each rank reads its own row groups (give the nodes a shared file
# system), rank 0 writes the report. Any error on any rank ends the job with the cause
# printed once in the .err file (no hung allocation). Adjust the #SBATCH lines to your site.
#
#SBATCH --job-name=analytics-profile
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=4G
#SBATCH --time=00:30:00
#SBATCH --output=%x-%j.out
#SBATCH --error=%x-%j.err

set -euo pipefail

DATA=${1:?usage: sbatch jobs/slurm_profile.sh DATA_PATH OUT_DIR}
OUT=${2:?usage: sbatch jobs/slurm_profile.sh DATA_PATH OUT_DIR}

# The project's venv, no environment modules: the mpich wheel ships MPI and mpiexec.
# Submit from the project checkout (sbatch starts in the submission directory).
source "${SLURM_SUBMIT_DIR:-$PWD}/.venv/bin/activate"

# One thread per rank: Arrow and numba must not oversubscribe the cores Slurm gave us.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export NUMBA_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export ARROW_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$SLURM_SUBMIT_DIR/.numba_cache}

# The wheel's mpiexec (Hydra) reads the Slurm allocation itself and starts the ranks with
# srun underneath. With a site MPI built against Slurm's PMI, 'srun python -m analytics ...'
# works as well (then install mpi4py against that MPI instead of the mpich wheel).
mpiexec -n "$SLURM_NTASKS" \
    python -m analytics profile "$DATA" --engine mpi --out "$OUT"
