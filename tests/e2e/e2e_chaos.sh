#!/usr/bin/env bash
# e2e_chaos - the short chaos run inside `make test`: 2,000 deliveries (see
# tests/e2e/chaos.sh; `make chaos` runs 20,000). CHAOS_SEED replays a failure.
# Paced at 100 deliveries a second, so that the faults and the kills of its
# 20 seconds land while the work is in flight. The group runs scaled out
# (ingest 2 on one port, validate 3, approve 2 and execute 3 partitioned by
# key): the kills land on one instance of a stage while the others go on.
CHAOS_N=${CHAOS_N:-2000} CHAOS_RATE=${CHAOS_RATE:-100} CHAOS_SCALE=${CHAOS_SCALE-ingest=2 validate=3 approve=2 execute=3} \
    exec bash "$(dirname "$0")/chaos.sh"
