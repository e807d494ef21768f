import Records

let usage = """
usage: http-encode

Reads response records on standard input (docs/protocol.md) and writes each as an
HTTP/1.1 response on standard output (the client socket), in order, one write each.
Sets Date, Content-Length and Content-Type (application/octet-stream when the record has
none) and its own Connection header; ignores connection, keep-alive, transfer-encoding,
content-length, date, upgrade, te, trailer and proxy-connection set by filters. HEAD
responses carry Content-Length but no body; 204 and 304 carry neither. A record with
annotations.cors (route --cors) gets Access-Control-Allow-Origin and Vary: Origin (docs/cors.md).
A request record nobody answered becomes 502 no_response; a line that is not a record, or
a response it cannot write safely (bad status, control characters in a header), becomes
500 internal_error and closes the connection. Error bodies are JSON {"error","message"}.
Exits after writing a response whose keep_alive is false, or at end of input; either way
it half-closes standard output first (shutdown(2)) so the client sees the end at once.

options: none.   environment: EDGEPIPE_CLOCK_OFFSET (seconds added to Date).

exit status: 0 when done, 1 when standard output is closed, 2 on bad usage.
See docs/http-encode.md.
"""

let options = Options(program: "http-encode", usage: usage)
if !options.rest().isEmpty { Log.fatal("no arguments expected (try --help)") }
HTTPEncoder().run()
