#!/usr/bin/env bash
# Seconds from `make run` to the first answered page, for a run after the first (dependencies installed, the
# database migrated). usage: bench/second_run.sh MAKEFILE PORT (run it once first to set the database up).
cd /work/main
export DATABASE_URL=sqlite:////tmp/second-run.sqlite3 DJANGO_STATIC_ROOT=/tmp/second-run-static
start=$(date +%s.%N)
make -f "$1" run PORT=$2 > /tmp/run-$2.log 2>&1 &
pid=$!
until curl -s -o /dev/null "http://127.0.0.1:$2/accounts/login/"; do sleep 0.05; done
end=$(date +%s.%N)
pkill -TERM -f "uvicorn --host 127.0.0.1 --port $2" ; wait $pid 2>/dev/null
echo "$1: $(echo "$end - $start" | bc) s"
