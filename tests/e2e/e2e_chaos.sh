#!/usr/bin/env bash
# e2e_chaos - the short chaos run inside `make test`: 2,000 deliveries (see
# tests/e2e/chaos.sh; `make chaos` runs 20,000). CHAOS_SEED replays a failure.
# Paced at 100 deliveries a second, so that the faults and the kills of its
# 20 seconds land while the work is in flight.
CHAOS_N=${CHAOS_N:-2000} CHAOS_RATE=${CHAOS_RATE:-100} exec bash "$(dirname "$0")/chaos.sh"
