import Records
import Crypto
import JWT

let usage = """
usage: sign-jwt dev --uid UID [--ttl S] [--claim NAME=VALUE]... [--claim-json NAME=JSON]... [--dev-keys DIR]
       sign-jwt dev --init [--dev-keys DIR]
       sign-jwt service-account --key-file FILE|- (--aud URL | --scope SCOPE...) [--scope SCOPE]...

Mints a JWT and writes it, with a newline, to standard output. Reads no records.

dev              A local development token for UID, verified by `verify-jwt --dev-keys DIR`
                 through the normal verification path. The first use creates DIR (mode 0700)
                 with an RSA-2048 key (private.pem, mode 0600) and its JWK Set (jwks.json).
                 Claims: iss and aud "edgepipe-dev", sub UID, iat, auth_time, exp = iat + TTL.
  --uid UID      the subject (1-128 characters, no control characters)
  --ttl S        lifetime in seconds (default 3600, at most 2592000)
  --claim N=V    an extra string claim; --claim-json N=JSON for numbers, booleans, objects
  --init         only create the key pair and JWK Set; print the JWK Set's path
  --dev-keys DIR key directory (default $EDGEPIPE_DEV_KEYS, else $EDGEPIPE_DATA/dev-keys)

service-account  A Google service-account JWT: RS256, kid = private_key_id, iss = sub =
                 client_email, iat, exp = iat + 3600, aud and/or a space-separated scope.
  --key-file F   the service account's JSON key file; "-" reads it from standard input
                 (default $GOOGLE_APPLICATION_CREDENTIALS). Keys are never taken from argv.
  --aud URL      the audience, e.g. https://firestore.googleapis.com/
  --scope S      an OAuth scope, repeatable

Environment: EDGEPIPE_DEV_KEYS, EDGEPIPE_DATA, GOOGLE_APPLICATION_CREDENTIALS,
  EDGEPIPE_CLOCK_OFFSET (shifts iat/exp, for skew tests).
Exit status: 0 on success; 1 when a key cannot be read, created or used; 2 on a usage error.
Details: docs/sign-jwt.md
"""

var arguments = Array(CommandLine.arguments.dropFirst())
// The command comes first: `sign-jwt dev --uid U`, `sign-jwt service-account ...`.
let command = arguments.first.flatMap { $0.hasPrefix("-") ? nil : $0 }
if command != nil { arguments.removeFirst() }
var options = Options(program: "sign-jwt", usage: usage, arguments: arguments)

func emit(_ text: String) {
    if !FileOutput.writeAll(1, Array((text + "\n").utf8)) { Log.fatal("cannot write to standard output", status: 1) }
}

switch command {
case "dev":
    let init_ = options.flag("--init")
    let uid = options.value("--uid")
    let ttl = options.int("--ttl", default: 3600)
    let plain = options.values("--claim")
    let json = options.values("--claim-json")
    guard let directory = options.value("--dev-keys", env: "EDGEPIPE_DEV_KEYS") ?? environment("EDGEPIPE_DATA").map({ $0 + "/dev-keys" }) else {
        Log.fatal("no dev key directory: give --dev-keys or set EDGEPIPE_DEV_KEYS or EDGEPIPE_DATA")
    }
    if let extra = options.rest().first { Log.fatal("unexpected argument '\(extra)' (try --help)") }
    var claims: [(String, JSON)] = []
    for (item, isJSON) in plain.map({ ($0, false) }) + json.map({ ($0, true) }) {
        let parts = item.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else { Log.fatal("--claim wants NAME=VALUE, got '\(item)'") }
        let name = String(parts[0])
        guard !DevKeys.reservedClaims.contains(name) else { Log.fatal("--claim cannot set \(name)") }
        if isJSON {
            guard let value = try? JSONReader.parse(String(parts[1])) else { Log.fatal("--claim-json \(name): not JSON") }
            claims.append((name, value))
        } else {
            claims.append((name, .string(String(parts[1]))))
        }
    }
    if !init_ {
        guard let uid else { Log.fatal("dev needs --uid (try --help)") }
        guard ClaimsPolicy.isValidSubject(uid) else { Log.fatal("--uid must be 1-128 characters without control characters") }
        guard ttl > 0, ttl <= 30 * 86400 else { Log.fatal("--ttl must be between 1 and 2592000 seconds") }
    }
    let keys = DevKeys(directory: directory)
    let pair: (key: PrivateKey, kid: String)
    do { pair = try keys.loadOrCreate() } catch { Log.fatal(error.description, status: 1) }
    if init_ {
        emit(keys.jwksPath)
    } else {
        do {
            emit(try DevKeys.mint(uid: uid!, ttl: ttl, extra: claims, key: pair.key, kid: pair.kid, now: Clock.now()))
        } catch {
            Log.fatal("signing failed: \(error)", status: 1)
        }
    }

case "service-account":
    guard let path = options.value("--key-file", env: "GOOGLE_APPLICATION_CREDENTIALS") else {
        Log.fatal("service-account needs --key-file (or GOOGLE_APPLICATION_CREDENTIALS)")
    }
    let audience = options.value("--aud")
    let scopes = options.values("--scope").flatMap { $0.split(separator: " ").map(String.init) }
    if let extra = options.rest().first { Log.fatal("unexpected argument '\(extra)' (try --help)") }
    guard audience != nil || !scopes.isEmpty else { Log.fatal("service-account needs --aud or --scope") }
    let bytes = path == "-" ? readStandardInput(limit: 1 << 20) : readFile(path, limit: 1 << 20)
    guard let bytes else { Log.fatal("cannot read \(path)", status: 1) }
    do {
        let account = try ServiceAccount.parse(bytes)
        emit(try account.token(audience: audience, scopes: scopes, now: Clock.now()))
    } catch {
        Log.fatal("\(error)", status: 1)
    }

case nil:
    Log.fatal("missing command: dev or service-account (try --help)")

default:
    Log.fatal("unknown command '\(command!)' (try --help)")
}
