# Sourced by scripts/run and scripts/serve: start long-running commands, then stop them all
# together. Ctrl-C, SIGTERM or any one of them exiting stops every one: each gets SIGTERM (its
# own graceful stop: gunicorn finishes the requests in flight, qcluster its current task), and
# whatever is still running STOP_GRACE_SECONDS later (default 7) is killed with all its
# children, so everything is gone within 10 s. An abandoned task is safe: ticks and checks are
# transactions and idempotent; the ORM broker hands the task out again after Q_CLUSTER's retry,
# and the minute schedules cover a task Redis lost.

SUPERVISED=()

# Each command runs in a process group of its own, so that Ctrl-C in a terminal reaches only
# this script (which stops the rest in order) and a kill reaches a command's children too.
supervised_start() {
    setsid "$@" &
    SUPERVISED+=("$!")
}

_now_ms() {
    local us="${EPOCHREALTIME/./}"
    echo $((us / 1000))
}

supervised_stop() {
    trap '' INT TERM
    local pid deadline
    deadline=$(($(_now_ms) + ${STOP_GRACE_SECONDS:-7} * 1000))
    for pid in "${SUPERVISED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SUPERVISED[@]}"; do
        while kill -0 -- "-$pid" 2>/dev/null && (($(_now_ms) < deadline)); do
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    # A killed process is gone a moment later, not at once: wait for that, briefly.
    deadline=$(($(_now_ms) + 1000))
    for pid in "${SUPERVISED[@]}"; do
        while kill -0 -- "-$pid" 2>/dev/null && (($(_now_ms) < deadline)); do
            sleep 0.05
        done
    done
}

# Waits until a signal or until one command exits, stops everything, and exits: 130 after
# SIGINT, 143 after SIGTERM, otherwise the status of the command that exited first.
supervise() {
    trap 'supervised_stop; exit 130' INT
    trap 'supervised_stop; exit 143' TERM
    local status=0
    wait -n || status=$?
    echo "a supervised process exited (status $status); stopping the others" >&2
    supervised_stop
    exit "$status"
}
