"""Signs in to a fresh Twofold server and prints the session cookies schemathesis runs with.

Usage: sessions.py BASE_URL TEMPORARY_PASSWORD

Takes the first administrator (admin@localhost) through its first sign-in: changes the
temporary password, enrolls an authenticator (the TOTP code is computed here from the secret
the API returns, RFC 6238 with HMAC-SHA1) and ends fully signed in. Then, as that
administrator, creates a user who must use two factors and signs them in with the password
only. Prints two lines, `admin=<cookie value>` and `enrolling=<cookie value>`.

Only the standard library: it runs on any python3.
"""

import base64
import hashlib
import hmac
import http.cookiejar
import json
import struct
import sys
import time
import urllib.error
import urllib.request

COOKIE = "twofold_session"
ADMIN = "admin@localhost"
ADMIN_PASSWORD = "schemathesis admin passphrase 7"
USER = "enrolling@example.com"
USER_PASSWORD = "schemathesis user passphrase 9"


class Client:
    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def post(self, path, body, expect):
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self.opener.open(request) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status != expect:
            sys.exit(f"POST {path}: {status} {text} (expected {expect})")
        return json.loads(text) if text else None

    def cookie(self):
        for cookie in self.jar:
            if cookie.name == COOKIE:
                return cookie.value
        sys.exit("no session cookie")


def totp(secret, at):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def main():
    base, temporary = sys.argv[1], sys.argv[2]
    admin = Client(base)
    state = admin.post("/api/v1/login", {"email": ADMIN, "password": temporary}, 200)
    assert state["state"] == "password_change_required", state
    state = admin.post("/api/v1/login/password", {"new_password": ADMIN_PASSWORD}, 200)
    assert state["state"] == "enrollment_required", state
    secret = admin.post("/api/v1/account/totp", {}, 200)["secret"]
    admin.post("/api/v1/account/totp/confirm", {"code": totp(secret, time.time())}, 200)
    admin.post(
        "/api/v1/admin/users",
        {"email": USER, "password": USER_PASSWORD, "require_2fa": True},
        201,
    )
    user = Client(base)
    state = user.post("/api/v1/login", {"email": USER, "password": USER_PASSWORD}, 200)
    assert state["state"] == "enrollment_required", state
    print(f"admin={admin.cookie()}")
    print(f"enrolling={user.cookie()}")


if __name__ == "__main__":
    main()
