# Sourced by bench scripts: nginx (Debian's, one process, no master) answering `pong` from memory
# on 127.0.0.1:PORT, pinned to the machine's last core, for the clients' efficiency runs (the
# client goes on the first core: left to the scheduler, the two sometimes share one and runs of
# the same client varied by 15%).
#   start_nginx_ping OUT_DIR PORT   sets nginx_pid, adds it to pids, and sets pin_client (the
#                                   taskset prefix for the client) and ping (the URL)
start_nginx_ping() {
    local dir=$PWD/$1 port=$2
    cat >"$dir/nginx.conf" <<NGINX
# One process (no master): stopping it cannot leave workers behind.
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx.error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    server { listen 127.0.0.1:$port; location / { return 200 "pong"; } }
}
NGINX
    local last_cpu=$(($(nproc) - 1))
    pin_client=(taskset -c 0)
    [ "$last_cpu" -gt 0 ] || pin_client=()
    taskset -c "$last_cpu" /usr/sbin/nginx -e "$dir/nginx.error.log" -p "$dir" -c "$dir/nginx.conf" -g "daemon off;" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    ping=http://127.0.0.1:$port/ping
    for _ in $(seq 200); do curl -sf -o /dev/null "$ping" && return 0; sleep 0.1; done
    echo "nginx did not answer on $ping" >&2
    return 1
}
