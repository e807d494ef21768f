import Records
import Crypto
import JWT

let (command, options) = Usage.commands.parse()

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
    guard let directory = options.value("--dev-keys") ?? dataPath("dev-keys") else {
        Log.fatal("no dev key directory: give --dev-keys or set EDGEPIPE_DEV_KEYS or EDGEPIPE_DATA")
    }
    let claims: [(String, JSON)]
    do { claims = try DevKeys.extraClaims(strings: plain, json: json) } catch { Log.fatal(error.description) }
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
    guard let path = options.value("--key-file") else {
        Log.fatal("service-account needs --key-file (or GOOGLE_APPLICATION_CREDENTIALS)")
    }
    let audience = options.value("--aud")
    let scopes = options.values("--scope").flatMap { $0.split(separator: " ").map(String.init) }
    guard audience != nil || !scopes.isEmpty else { Log.fatal("service-account needs --aud or --scope") }
    let bytes = path == "-" ? readStandardInput(limit: 1 << 20) : readFile(path, limit: 1 << 20)
    guard let bytes else { Log.fatal("cannot read \(path)", status: 1) }
    do {
        let account = try ServiceAccount.parse(bytes)
        emit(try account.token(audience: audience, scopes: scopes, now: Clock.now()))
    } catch {
        Log.fatal("\(error)", status: 1)
    }

default:
    preconditionFailure("CommandTable returns only the commands it declares")
}
