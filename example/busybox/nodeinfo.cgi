#!/bin/sh
# nodeinfo: answers every request with this container's hostname and machine (uname -m).
printf 'Content-Type: application/json\r\n\r\n'
printf '{"hostname": "%s", "machine": "%s"}\n' "$(hostname)" "$(uname -m)"
