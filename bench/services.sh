# bench/services.sh: the services a bench script starts (sourced once $work is set, not run).
#
# `start CMD...` runs CMD in its own session (a process group), its output appended to
# $work/services.log; `stop_last` stops the newest such group (TERM, then KILL after 5 s).
# On exit every group still running is stopped, then $work is removed.
groups=()
start() { setsid "$@" >>"$work/services.log" 2>&1 & groups+=($!); }
stop_last() {
    local g=${groups[-1]}
    kill -TERM -- "-$g" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
    unset 'groups[-1]'
}
cleanup() {
    while [ ${#groups[@]} -gt 0 ]; do stop_last; done
    rm -rf "$work"
}
trap cleanup EXIT
