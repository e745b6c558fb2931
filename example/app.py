"""nodeinfo: answers GET / with the host name and the machine this process runs on."""
import os
import platform
import socket

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def info():
    return jsonify(hostname=socket.gethostname(), machine=platform.machine())


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
