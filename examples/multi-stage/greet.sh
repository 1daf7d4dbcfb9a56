#!/bin/busybox sh
/bin/busybox echo "hello, $1"
/bin/busybox cat /app/stamp.txt
