# Sourced by the benchmark scripts. timed NAME RUNS CMD...: runs CMD RUNS
# times and prints "NAME median_wall_s max_rss_mib" (GNU time's %e and %M).
# Needs $WORK, a scratch folder.
timed() {
    local name=$1 runs=$2
    shift 2
    local walls=() rss=0
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null
        read -r w m <"$WORK/time"
        walls+=("$w")
        [ "$m" -gt "$rss" ] && rss=$m
    done
    local median
    median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-40s %8.2f s %8.0f MiB\n' "$name" "$median" "$((rss / 1024))"
}
