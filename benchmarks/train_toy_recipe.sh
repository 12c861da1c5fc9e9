#!/usr/bin/env bash
# The committed toy weights (kvlock/assets/wan_toy.safetensors) from scratch: the stages as they
# were run, each warm-starting from the previous stage's EMA weights, with the exact step counts
# (every stage is deterministic on one CPU thread: fixed seeds, fresh scenes per stage).
# Why each stage exists: kvlock/assets/wan_toy.md. About 2 h on one CPU core (stage minutes: 60, 20, 6, 32).
#
#   bash benchmarks/train_toy_recipe.sh [out_root] [export_path]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/train_toy/recipe}
EXPORT=${2:-}
PY=${PYTHON:-.venv/bin/python}
FOREVER="train.max_minutes=1e9"
BAG="model_overrides.text.absolute_positions=false"  # stages before the encoder got positions
TUNE="train.lr=1e-3 train.warmup=100 train.t_uniform_share=0.5"

stage() {  # name, init (or -), step count, overrides...
  local name=$1 init=$2 steps=$3
  shift 3
  local from=()
  [[ $init != - ]] && from=("init_weights=$OUT/$init/wan_toy.safetensors")
  echo "== stage $name: $steps steps"
  "$PY" -m benchmarks.train_toy "out_dir=$OUT/$name" "${from[@]}" "train.max_steps=$steps" $FOREVER "$@"
}

# 1. x̂0 loss, t ~ logit-normal(1, 1): the prompt is read (as a bag of words) and colours appear
stage 1_base - 11000 $BAG
# 2. + a uniform share of t and the velocity loss: edges and small shapes survive the last steps
stage 2_detail 1_base 3500 $BAG $TUNE data.train_seed=1100 train.loss=velocity
# 3. + learned absolute positions in the text encoder (zero-initialised, so it starts as stage 2)
stage 3_positions 2_detail 1000 $TUNE data.train_seed=1300
# 4. + t ~ logit-normal(2.5, 1) and the object weight faded to 0 at t = 1: colour roles get bound
stage 4_binding 3_positions 6000 $TUNE data.train_seed=1400 train.t_mean=2.5 train.object_weight_fade=true
if [[ -n $EXPORT ]]; then cp "$OUT/4_binding/wan_toy.safetensors" "$EXPORT"; fi
