# nodeinfo: a tiny HTTP service that says which machine it runs on.
# Built FROM the multi-arch base seeded by ci/provision.sh; one image per platform.
FROM localhost:5000/busybox:latest
COPY example/nodeinfo.cgi /www/cgi-bin/index.cgi
# Runs under QEMU for every non-amd64 platform: records the build machine and checks the script.
RUN chmod 0755 /www/cgi-bin/index.cgi \
 && uname -m > /etc/build-machine \
 && sh -n /www/cgi-bin/index.cgi \
 && echo "built on $(cat /etc/build-machine)"
EXPOSE 8080
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
