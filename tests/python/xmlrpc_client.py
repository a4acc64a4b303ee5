"""Python's standard xmlrpc.client against fnhost's /RPC2, unchanged.

Run by tests/tests/xmlrpc.rs as `python3 xmlrpc_client.py URL` against a host with the example
guests deployed. Exits non-zero (with a traceback) at the first check that fails; prints one
line per check that passed.
"""

import base64
import http.client
import json
import sys
import urllib.parse
import urllib.request
import xmlrpc.client

BASE = sys.argv[1].rstrip("/")
URL = BASE + "/RPC2"


class CountingTransport(xmlrpc.client.Transport):
    """Counts HTTP requests, to prove a MultiCall is one request."""

    def __init__(self):
        super().__init__()
        self.requests = 0

    def request(self, host, handler, request_body, verbose=False):
        self.requests += 1
        return super().request(host, handler, request_body, verbose)


def ok(what):
    print("ok -", what, flush=True)


def expect_fault(code, fn, *args, contains=None):
    try:
        result = fn(*args)
    except xmlrpc.client.Fault as fault:
        assert fault.faultCode == code, (fault.faultCode, fault.faultString)
        if contains is not None:
            assert contains in fault.faultString, fault.faultString
        return fault
    raise AssertionError(f"expected fault {code}, got {result!r}")


def post_raw(body):
    """POSTs raw bytes to /RPC2; returns (status, content type, parsed answer or Fault)."""
    url = urllib.parse.urlsplit(URL)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", url.path, body=body, headers={"Content-Type": "text/xml"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        answer = xmlrpc.client.loads(data)[0][0]
    except xmlrpc.client.Fault as fault:
        answer = fault
    return response.status, response.getheader("Content-Type"), answer


transport = CountingTransport()
proxy = xmlrpc.client.ServerProxy(URL, transport=transport, allow_none=True)

# Plain calls.
assert proxy.math.add(7, 3) == 10
assert proxy.math.subtract(7, 3) == 4
assert proxy.math.add(2**31 - 1, 1) == 2**31, "results past i32 come back as <i8>"
ok("math.add(7, 3) == 10")

# MultiCall: four calls, one HTTP request, answers in order.
before = transport.requests
multi = xmlrpc.client.MultiCall(proxy)
multi.math.add(7, 3)
multi.math.subtract(7, 3)
multi.math.multiply(7, 3)
multi.math.divide(7, 3)
results = list(multi())
assert transport.requests - before == 1, transport.requests - before
assert results[:3] == [10, 4, 21], results
assert abs(results[3] - 7 / 3) < 1e-12 and isinstance(results[3], float), results
ok("MultiCall add/subtract/multiply/divide in one request")

# A fault inside a MultiCall is raised for that item only.
multi = xmlrpc.client.MultiCall(proxy)
multi.math.add(1, 2)
multi.math.divide(1, 0)
multi.system.multicall([])
multi.math.add(3, 4)
answers = multi()
assert answers[0] == 3
expect_fault(-32010, lambda: answers[1], contains="division by zero")
expect_fault(-32600, lambda: answers[2], contains="nested")
assert answers[3] == 7
ok("MultiCall items fail one by one; nested system.multicall refused")

# Faults.
fault = expect_fault(-32010, proxy.math.divide, 1, 0, contains="division by zero")
ok(f"math.divide(1, 0) -> Fault {fault.faultCode} {fault.faultString!r}")
expect_fault(-32601, proxy.math.pow, 2, 3)
expect_fault(-32601, proxy.nosuchmodule.f)
expect_fault(-32601, getattr(proxy, "nodot"))
expect_fault(-32602, proxy.math.add, "seven", 3)
ok("unknown methods -> -32601, bad params -> -32602")

# Optional positional params: none, some, and nil for a skipped one.
everyone = proxy.directory.search()
assert len(everyone) >= 5, everyone
smiths = proxy.directory.search(None, "Smith")
assert len(smiths) >= 2 and all(p["last_name"] == "Smith" for p in smiths), smiths
mary = proxy.directory.search(None, "Smith", "Mary")
assert mary == [{"number": "555-0102", "last_name": "Smith", "first_name": "Mary"}], mary
ok("directory.search by position, nil for skipped params")

# echo returns its params (always an array over XML-RPC).
nested = {
    "name": "Ada <&> \"Lovelace\" é 😀",
    "list": [1, -2, 2.5, True, False, None, "", [], {}],
    "deep": {"a": {"b": [{"c": [None]}]}},
    "lines": "a\nb\tc",
}
assert proxy.echo.echo(nested, 7, "x") == [nested, 7, "x"]
# Python sends "\r" unescaped, and XML parsers turn line ends into "\n" (as expat does).
assert proxy.echo.echo("a\r\nb\rc") == ["a\nb\nc"]
assert proxy.echo.echo() == []
payload = b"\x00\x01hello\xff" * 20  # long enough for Python to wrap the base64 lines
answer = proxy.echo.echo(xmlrpc.client.Binary(payload))
assert answer == [base64.b64encode(payload).decode()], answer
when = xmlrpc.client.DateTime("20260101T12:30:00")
assert proxy.echo.echo(when) == ["20260101T12:30:00"]
ok("echo round trip: struct, array, bool, double, string, nil; base64/dateTime as strings")

# A character XML 1.0 cannot carry is refused with a fault.
status, _, answer = post_raw(
    b"<?xml version='1.0'?><methodCall><methodName>echo.echo</methodName><params>"
    b"<param><value>bell &#x7;</value></param></params></methodCall>"
)
assert isinstance(answer, xmlrpc.client.Fault) and answer.faultCode == -32700, answer
ok("a control character reference -> Fault -32700")

# Introspection.
methods = proxy.system.listMethods()
for m in ["math.add", "math.divide", "echo.echo", "directory.search", "system.multicall"]:
    assert m in methods, methods
with urllib.request.urlopen(BASE + "/v1/functions/math") as r:
    doc = {m["name"]: m["doc"] for m in json.load(r)["methods"]}["math.add"]
assert doc.startswith("Adds y to x."), doc
assert proxy.system.methodHelp("math.add") == doc
assert proxy.system.methodSignature("math.add") == [["int", "int", "int"]]
assert proxy.system.methodSignature("math.divide") == [["double", "double", "double"]]
expect_fault(-32601, proxy.system.methodHelp, "math.pow")
ok("system.listMethods / methodHelp / methodSignature")

# Hostile XML: a billion laughs and an external entity, as raw bytes.
laughs = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodCall><methodName>echo.echo</methodName>
<params><param><value><string>&lol9;</string></value></param></params></methodCall>"""
xxe = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>echo.echo</methodName>
<params><param><value><string>&xxe;</string></value></param></params></methodCall>"""
undefined = (b"<?xml version='1.0'?><methodCall><methodName>echo.echo</methodName><params>"
             b"<param><value>&xxe;</value></param></params></methodCall>")
for name, body in [("billion laughs", laughs), ("external entity", xxe),
                   ("undefined entity", undefined)]:
    status, content_type, answer = post_raw(body)
    assert status == 200, status
    assert content_type.startswith("text/xml"), content_type
    assert isinstance(answer, xmlrpc.client.Fault), (name, answer)
    assert answer.faultCode == -32700, (name, answer)
    assert "root:" not in answer.faultString, answer.faultString
    ok(f"{name} -> Fault {answer.faultCode} {answer.faultString!r}")

status, _, answer = post_raw(b"<methodCall><methodName>math.add</methodName>")
assert isinstance(answer, xmlrpc.client.Fault) and answer.faultCode == -32700, answer
status, _, answer = post_raw(b"<methodCall><params/></methodCall>")
assert isinstance(answer, xmlrpc.client.Fault) and answer.faultCode == -32600, answer
ok("broken XML -> -32700, no methodName -> -32600")

# Still serving.
assert proxy.math.add(7, 3) == 10
ok("the host still answers math.add afterwards")
print("all xmlrpc.client checks passed")
