#!/bin/sh
# A CGI script: httpd runs it per request; ENV from the image reaches it.
echo "Content-Type: text/plain"
echo
echo "$GREETING"
