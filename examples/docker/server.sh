#!/bin/sh
# Stands in for the real server: it needs DB_PASSWORD, and stops on SIGTERM.
: "${DB_PASSWORD:?started without DB_PASSWORD}"
trap 'echo "server: stopping"; exit 0' TERM
echo "server: up"
while :; do sleep 1; done
