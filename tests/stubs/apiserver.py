#!/usr/bin/env python3
"""A stand-in kube-apiserver for installer tests: TLS with the bundle's installed serving
cert, client certificates checked against the bundle's CA. As with --anonymous-auth=false,
a request without a certificate gets 401 (and is logged as anonymous); with one, GET
/healthz answers "ok", POSTs to a collection answer 201 the first time a name is seen and
409 after. Client certificates from the cluster CA and from the front-proxy CA are accepted;
a front-proxy-client certificate speaks for the user and group of its X-Remote-User and
X-Remote-Group headers, as the request-header authenticator has it. Every request is
appended to $STUB_DIR/requests.log, POSTs with who made them ("as USER (GROUP)").

With PORT and SERVING (say 10257 controller-manager-server) it stands in for the
controller manager's or the scheduler's secure port instead, serving SERVING.crt."""
import http.server
import json
import os
import ssl
import sys

root, address, state = sys.argv[1], sys.argv[2], os.environ["STUB_DIR"]
port, serving = (int(sys.argv[3]), sys.argv[4]) if len(sys.argv) > 4 else (6443, "apiserver")
certs = root + os.environ.get("STUB_CERT_DIR", "/etc/kubernetes/pki")


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def record(self, line):
        with open(os.path.join(state, "requests.log"), "a") as log:
            log.write(line + "\n")

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def anonymous(self, method):
        if self.connection.getpeercert():
            return False
        self.record(method + " " + self.path + " anonymous")
        self.reply(401, b'{"reason": "Unauthorized"}')
        return True

    def do_GET(self):
        if self.anonymous("GET"):
            return
        self.record("GET " + self.path)
        self.reply(200, b"ok") if self.path == "/healthz" else self.reply(404, b"{}")

    def identity(self):
        cert = self.connection.getpeercert()
        name = lambda rdns, key: next((v for rdn in rdns for k, v in rdn if k == key), "")
        cn, issuer = name(cert["subject"], "commonName"), name(cert["issuer"], "commonName")
        if cn == "front-proxy-client" and "front-proxy" in issuer:
            return "%s (%s)" % (self.headers.get("X-Remote-User", ""), self.headers.get("X-Remote-Group", ""))
        return "%s (%s)" % (cn, name(cert["subject"], "organizationName"))

    def do_POST(self):
        if self.anonymous("POST"):
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        name = next((l.split(":", 1)[1].strip() for l in body.splitlines() if l.strip().startswith("name:")), "")
        created = os.path.join(state, "created")
        seen = open(created).read().split() if os.path.exists(created) else []
        self.record("POST " + self.path + " " + name + " as " + self.identity())
        if name in seen:
            self.reply(409, json.dumps({"reason": "AlreadyExists"}).encode())
        else:
            with open(created, "a") as f:
                f.write(name + "\n")
            self.reply(201, b"{}")


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(certs + "/" + serving + ".crt", certs + "/" + serving + ".key")
context.load_verify_locations(certs + "/ca.crt")
context.load_verify_locations(certs + "/front-proxy-ca.crt")
context.verify_mode = ssl.CERT_OPTIONAL
server = http.server.ThreadingHTTPServer((address, port), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
